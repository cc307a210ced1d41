import type { CommandModule } from 'yargs';
import { UserError } from '../io/errors.js';
import { exportCheckpoint, type Exporter } from '../sae/exchange.js';
import { writeSaelensFolder } from '../sae/formats/saelens.js';
import { writeSparsifyFolder } from '../sae/formats/sparsify.js';
import { CREATED_BY } from '../version.js';

/**
 * `sae-train export <checkpoint> --format F --out DIR`. Formats are a registry: an exporter is a function
 * (src/sae/exchange.ts Exporter) that writes the loaded checkpoint into an empty folder; add one here.
 */
export const EXPORT_FORMATS: Record<string, { describe: string; write: Exporter }> = {
  saelens: {
    describe: 'SAELens 6.x folder (cfg.json with architecture + metadata, sae_weights.safetensors): SAE.load_from_disk(DIR)',
    write: (s, out) => writeSaelensFolder(out, { cfg: s.cfg, weights: s.weights, sparsity: s.sparsity, trainedWith: CREATED_BY }),
  },
  sparsify: {
    describe: 'sparsify sparse-coder folder (cfg.json + sae.safetensors), TopK SAEs only: SparseCoder.load_from_disk(DIR)',
    write: (s, out) => writeSparsifyFolder(out, { cfg: s.cfg, weights: s.weights }),
  },
};

interface Args {
  checkpoint: string;
  format: string;
  out: string;
  overwrite: boolean;
  'hook-name'?: string;
}

export const exportCommand: CommandModule<object, Args> = {
  command: 'export <checkpoint>',
  describe: 'write a checkpoint (any format sae-train reads, or hf://owner/repo/folder) as another tool\'s folder',
  builder: (y) => y
    .positional('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint folder (this project\'s, SAELens\', sparsify\'s) or hf://<owner>/<repo>/<folder>' })
    .option('format', { type: 'string', demandOption: true, describe: Object.entries(EXPORT_FORMATS).map(([k, v]) => `${k}: ${v.describe}`).join('; ') })
    .option('out', { type: 'string', demandOption: true, describe: 'output folder (must be empty or absent)' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace a non-empty --out' })
    .option('hook-name', { type: 'string', describe: 'the hook the SAE reads, for folders that do not say it (sparsify)' })
    .epilog('Formats are documented in docs/formats.md.') as never,
  handler: async (a) => {
    const f = EXPORT_FORMATS[a.format];
    if (!f) throw new UserError(`--format ${a.format}: not a known format; choose one of ${Object.keys(EXPORT_FORMATS).join(', ')}.`);
    await exportCheckpoint(a.checkpoint, f.write, a.out, { overwrite: a.overwrite, hookName: a['hook-name'] });
  },
};
