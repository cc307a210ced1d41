import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../io/errors.js';
import { cacheRoot, downloadFile, HubFileMissing, hubFileUrl, HubUnreachable } from '../model/hub.js';
import { info } from '../ui/log.js';
import type { LoadOptions } from './formats/common.js';
import { readJson } from './formats/common.js';
import { SAELENS_SCALER, SAELENS_WEIGHTS } from './formats/saelens.js';
import { SPARSIFY_WEIGHTS } from './formats/sparsify.js';

/**
 * Where the `checkpoints:` of eval, finetune and consistency come from: local folders (any format that
 * src/sae/checkpoint.ts reads) or `hf://<owner>/<repo>/<folder>` on the Hugging Face hub, downloaded once
 * into $SAE_TRAIN_CACHE/saes/<owner>/<repo>/<folder>/ with the model downloader (src/model/hub.ts: Range
 * resume, checksum, atomic rename, HF_TOKEN). The recipe's `hook_names` (entry → hook) says which hook an SAE
 * reads when its folder does not (sparsify).
 */

export const HF_PREFIX = 'hf://';

export interface ResolvedCheckpoints {
  /** Local folders, in the order of the entries. */
  dirs: string[];
  /** Load options of a local folder (its hook from hook_names). */
  opts: (dir: string) => LoadOptions;
}

/** hf://owner/repo[/folder] → { repo, folder }. */
export function parseHfEntry(entry: string): { repo: string; folder: string } {
  const rest = entry.slice(HF_PREFIX.length).replace(/\/+$/, '');
  const parts = rest.split('/');
  if (parts.length < 2 || parts.some((p) => !p || p === '..' || p === '.'))
    throw new UserError(`"${entry}": write a hub checkpoint as hf://<owner>/<repo>/<folder>, e.g. hf://jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre.`);
  return { repo: parts.slice(0, 2).join('/'), folder: parts.slice(2).join('/') };
}

/** The local folder an hf:// entry is cached in. */
export function hfCacheDir(entry: string): string {
  const { repo, folder } = parseHfEntry(entry);
  return join(cacheRoot(), 'saes', ...repo.split('/'), ...(folder ? folder.split('/') : []));
}

/** The advice for an SAE download from an unreachable hub: the SAE's files and `sae-train import`, not a model's. */
export function offlineSaeError(entry: string, err: HubUnreachable): UserError {
  const { repo, folder } = parseHfEntry(entry);
  const page = `https://huggingface.co/${repo}/tree/main${folder ? `/${folder}` : ''}`;
  return new UserError(`could not download ${err.url} (${err.code}): the machine seems to be offline or the hub unreachable. ` +
    `On a machine with internet access, download the SAE's cfg.json and ${SAELENS_WEIGHTS} (a sparsify folder: ${SPARSIFY_WEIGHTS}; also sparsity.safetensors and ${SAELENS_SCALER} where the folder has them) ` +
    `from ${page} into a folder, then run \`sae-train import <folder> --out DIR\` (or list the folder itself in the recipe's checkpoints instead of ${entry}).`);
}

/** Downloads one file unless it is there; false when the hub has no such file (and `optional`). */
async function fetchFile(entry: string, repo: string, file: string, dest: string, optional: boolean): Promise<boolean> {
  if (existsSync(dest)) return true;
  try {
    info(`downloading ${hubFileUrl(repo, file)} → ${dest}`);
    await downloadFile(repo, file, dest);
    return true;
  } catch (err) {
    if (err instanceof HubUnreachable) throw offlineSaeError(entry, err);
    if (err instanceof HubFileMissing && optional) return false;
    if (err instanceof HubFileMissing)
      throw new UserError(`${hubFileUrl(repo, file)}: not found on the hub (HTTP 404). Check the repo and folder of the hf:// entry, or download the folder and name it as a local path.`);
    throw err;
  }
}

/**
 * An SAE folder from the hub: cfg.json, then sparsity.safetensors and SAELens' activation_scaler.json when
 * the hub has them, then the weights file of whichever layout it is (SAELens' sae_weights.safetensors, else
 * sparsify's sae.safetensors) last: a cached folder with a weights file is complete and is not asked for again.
 */
export async function fetchHubSae(entry: string): Promise<string> {
  const { repo, folder } = parseHfEntry(entry);
  const dir = hfCacheDir(entry);
  if (existsSync(join(dir, 'cfg.json')) && [SAELENS_WEIGHTS, SPARSIFY_WEIGHTS].some((w) => existsSync(join(dir, w)))) return dir;
  const file = (f: string) => (folder ? `${folder}/${f}` : f);
  await fetchFile(entry, repo, file('cfg.json'), join(dir, 'cfg.json'), false);
  const cfg = readJson(join(dir, 'cfg.json'), 'an SAE config');
  await fetchFile(entry, repo, file('sparsity.safetensors'), join(dir, 'sparsity.safetensors'), true);
  if (cfg.normalize_activations === 'expected_average_only_in' || cfg.normalize_activations === true)
    await fetchFile(entry, repo, file(SAELENS_SCALER), join(dir, SAELENS_SCALER), true);
  // sparsify's cfg has no d_sae (num_latents / expansion_factor instead); SAELens' always has one.
  const order = cfg.d_sae === undefined ? [SPARSIFY_WEIGHTS, SAELENS_WEIGHTS] : [SAELENS_WEIGHTS, SPARSIFY_WEIGHTS];
  for (const w of order) if (await fetchFile(entry, repo, file(w), join(dir, w), true)) return dir;
  throw new UserError(`${hubFileUrl(repo, file(order[0]))}: the hub folder has neither ${SAELENS_WEIGHTS} nor ${SPARSIFY_WEIGHTS}. sae-train reads safetensors only and never unpickles .pt files: download the folder and run \`sae-train import <folder> --out DIR\` on it, which prints the conversion to safetensors.`);
}

/** Local folders for checkpoint entries (hf:// ones downloaded), with each one's hook from `hook_names`. */
export async function resolveCheckpoints(entries: readonly string[], hookNames: Readonly<Record<string, string>> = {}): Promise<ResolvedCheckpoints> {
  const hooks = new Map<string, string>();
  for (const [k, v] of Object.entries(hookNames)) hooks.set(k.startsWith(HF_PREFIX) ? resolve(hfCacheDir(k)) : resolve(k), v);
  const dirs: string[] = [];
  for (const e of entries) dirs.push(e.startsWith(HF_PREFIX) ? await fetchHubSae(e) : e);
  return { dirs, opts: (dir) => (hooks.has(resolve(dir)) ? { hookName: hooks.get(resolve(dir)) } : {}) };
}
