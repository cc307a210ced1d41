import type { SaeCfg } from '../sae/checkpoint.js';

/** A checkpoint taking part in a comparison. */
export interface PairableRun {
  name: string;
  dir: string;
  cfg: SaeCfg;
}

/** cfg.json keys that define what a run is, apart from its seed and dictionary size. */
const SAME = ['architecture', 'model_name', 'hook_name', 'd_in', 'l1_coefficient', 'lr', 'tokens', 'batch_size',
  'training_normalization', 'decoder', 'cache_manifest_sha256', 'finetune_method'] as const;

function key(cfg: SaeCfg, extra: readonly ('d_sae' | 'seed')[]): string {
  return JSON.stringify([...SAME, ...extra].map((k) => cfg[k] ?? null));
}

function groups(runs: PairableRun[], extra: readonly ('d_sae' | 'seed')[]): PairableRun[][] {
  const g = new Map<string, PairableRun[]>();
  for (const r of runs) {
    const k = key(r.cfg, extra);
    g.set(k, [...(g.get(k) ?? []), r]);
  }
  return [...g.values()];
}

/**
 * Every pair of runs that differ only in seed (same everything else in cfg.json), lower seed first. SAEs
 * imported from other tools (cfg.imported_from) record no training settings to group by: each is paired
 * with every other SAE of the same hook, d_in and d_sae, so that SAEs from different tools can be compared.
 */
export function seedPairs(runs: PairableRun[]): [PairableRun, PairableRun][] {
  const imported = (r: PairableRun) => r.cfg.imported_from !== undefined;
  const out: [PairableRun, PairableRun][] = [];
  const sorted = [...runs].sort((x, y) => x.name.localeCompare(y.name));
  for (let i = 0; i < sorted.length; i++)
    for (let j = i + 1; j < sorted.length; j++) {
      const a = sorted[i], b = sorted[j];
      if ((imported(a) || imported(b)) && a.cfg.hook_name === b.cfg.hook_name && a.cfg.d_in === b.cfg.d_in && a.cfg.d_sae === b.cfg.d_sae) out.push([a, b]);
    }
  for (const g of groups(runs.filter((r) => !imported(r)), ['d_sae'])) {
    const s = [...g].sort((x, y) => x.cfg.seed - y.cfg.seed || x.name.localeCompare(y.name));
    for (let i = 0; i < s.length; i++)
      for (let j = i + 1; j < s.length; j++) if (s[i].cfg.seed !== s[j].cfg.seed) out.push([s[i], s[j]]);
  }
  return out;
}

/**
 * Runs that differ only in d_sae, with the same seed: each size with the next larger one (smaller first),
 * the pairs a feature-splitting table compares.
 */
export function sizePairs(runs: PairableRun[]): [PairableRun, PairableRun][] {
  const out: [PairableRun, PairableRun][] = [];
  for (const g of groups(runs, ['seed'])) {
    const s = [...g].sort((x, y) => x.cfg.d_sae - y.cfg.d_sae || x.name.localeCompare(y.name));
    for (let i = 0; i + 1 < s.length; i++) if (s[i + 1].cfg.d_sae > s[i].cfg.d_sae) out.push([s[i], s[i + 1]]);
  }
  return out;
}
