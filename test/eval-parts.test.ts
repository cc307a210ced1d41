import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestBackend } from './helpers/backend.js';
import { runMain } from './helpers/main-cli.js';
import { writeRun } from './helpers/finetune-fixture.js';
import { identitySae, writeEvalCheckpoints } from './helpers/hand-saes.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/** eval --part: the parts' per-run results and the finishing pass's summaries equal one process's, byte for byte. */
const TEXT = `The river ran past the old mill and under the stone bridge, where children threw sticks into the water
and watched them race toward the sea. In the spring the water rose high and brown; in the summer it slowed.
<|endoftext|>A recipe for bread needs flour, water, salt and time. Mix them, let the dough rest, fold it, and bake it.`;

const D = 16;
const root = tmpDir('sae-eval-parts-');
const modelDir = writeTinyModel(root, 'tiny', 0);
const corpus = join(root, 'heldout.txt');
const ckRoot = join(root, 'checkpoints');

function recipe(name: string, out: string, checkpoints: string[] = []): string {
  const path = join(root, `${name}.yaml`);
  writeFileSync(path, `name: ${name}\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\ntrain:\n  cache: unused\n  d_sae: 48\n  out: ${JSON.stringify(ckRoot)}\n` +
    `eval:\n  corpus: [${JSON.stringify(corpus)}]\n  context_size: 16\n  tokens: 64\n  batch_size: 3\n  topk: [2]\n  drop_lowest: [1]\n  prompts: ['The river']\n  max_new_tokens: 3\n` +
    (checkpoints.length ? `  checkpoints: ${JSON.stringify(checkpoints)}\n` : '') + `  out: ${JSON.stringify(join(root, out))}\n`);
  return path;
}

const cli = runMain;

function tree(dir: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(join(dir, d), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory()) walk(join(d, e.name));
      else m.set(join(d, e.name), readFileSync(join(dir, d, e.name)));
    }
  };
  walk('');
  return m;
}

beforeAll(async () => {
  await useTestBackend();
  writeFileSync(corpus, TEXT);
  writeEvalCheckpoints(ckRoot, D, 9);
});

describe('eval --part', () => {
  it('parts 1/2 and 0/2 then the finishing pass write the one-process outputs, byte for byte', async () => {
    const one = await cli(['eval', recipe('one', 'one')]);
    expect(one.code, one.stderr).toBe(0);
    const r = recipe('two', 'two');
    const p1 = await cli(['eval', r, '--part', '1/2']);
    expect(p1.code, p1.stderr).toBe(0);
    expect(p1.stdout).toMatch(/eval part 1\/2: 2 of 4 checkpoint\(s\)/);
    expect(readdirSync(join(root, 'two'))).not.toContain('summary.json'); // a part writes per-run results only
    expect((await cli(['eval', r, '--part', '0/2'])).code).toBe(0);
    const fin = await cli(['eval', r]);
    expect(fin.code, fin.stderr).toBe(0);
    expect(fin.stdout).toMatch(/reusing 4 finished eval/);
    const a = tree(join(root, 'one')), b = tree(join(root, 'two'));
    expect([...b.keys()]).toEqual([...a.keys()]);
    expect([...a.keys()]).toContain('all_at_once.json');
    for (const [k, v] of a) expect(b.get(k)!.equals(v), k).toBe(true);
  });

  it('a failing checkpoint fails its part alone; the part still writes its good checkpoints', async () => {
    const bad = join(root, 'bad');
    writeRun(join(bad, 'nohook'), identitySae(D), 'blocks.7.hook_resid_pre', { d_sae: 2 * D });
    const r = recipe('bad', 'bad-out', [join(bad, 'nohook'), join(ckRoot, 'pre1-id'), join(ckRoot, 'post0-rand')]);
    // part 0/2 holds nohook and post0-rand (round robin), part 1/2 pre1-id
    const p0 = await cli(['eval', r, '--part', '0/2']);
    expect(p0.code).toBe(1);
    expect(p0.stderr).toMatch(/eval failed for 1 of 3 checkpoint.*\n.*nohook: .*unknown hook "blocks\.7\.hook_resid_pre"/);
    expect(readdirSync(join(root, 'bad-out'))).toContain('post0-rand');
    expect((await cli(['eval', r, '--part', '1/2'])).code).toBe(0);
    expect(readdirSync(join(root, 'bad-out')).sort()).toEqual(['post0-rand', 'pre1-id']);
  });
});
