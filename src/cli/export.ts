import type { CommandModule } from 'yargs';
import { UserError } from '../io/errors.js';
import { exportNeuronpedia } from '../features/neuronpedia.js';
import { exportCheckpoint, writeFolder, type Exporter } from '../sae/exchange.js';
import { info } from '../ui/log.js';
import { writeSaelensFolder } from '../sae/formats/saelens.js';
import { writeSparsifyFolder } from '../sae/formats/sparsify.js';
import { writeRunFolder } from '../sae/formats/run-folder.js';
import { checkProcessingLabel, PROCESSING_LABELS } from '../sae/provenance.js';
import { CREATED_BY } from '../version.js';

/**
 * `sae-train export <checkpoint> --format F --out DIR`. Formats are a registry: an exporter is a function
 * (src/sae/exchange.ts Exporter) that writes the loaded checkpoint into an empty folder; add one here.
 */
export const EXPORT_FORMATS: Record<string, { describe: string; write: Exporter }> = {
  saelens: {
    describe: 'SAELens 6.x folder (cfg.json with architecture + metadata, sae_weights.safetensors): SAE.load_from_disk(DIR)',
    write: (s, out) => writeSaelensFolder(out, { dir: s.dir, cfg: s.cfg, weights: s.weights, sparsity: s.sparsity, provenance: s.provenance, exportedBy: CREATED_BY }),
  },
  sparsify: {
    describe: 'sparsify sparse-coder folder (cfg.json + sae.safetensors), TopK SAEs only: SparseCoder.load_from_disk(DIR)',
    write: (s, out) => writeSparsifyFolder(out, { dir: s.dir, cfg: s.cfg, weights: s.weights, provenance: s.provenance }),
  },
  'sae-train': {
    describe: 'this project\'s run folder with today\'s cfg.json (rewrites a run folder written before normalize_activations meant SAELens\' runtime norm, so that SAE.load_from_disk(DIR) reads it as it is)',
    write: (s, out) => writeRunFolder(out, s),
  },
};

/** Feature dashboards read from an eval run's feature files rather than from the weights alone. */
const NEURONPEDIA = {
  describe: 'Neuronpedia / SAE-Vis feature dashboards (batch-N.json + skipped_indexes.json, SAELens NeuronpediaRunner layout) from an eval run folder <eval.out>/<run>, or a checkpoint with --eval-out',
};

interface Args {
  checkpoint: string;
  format: string;
  out: string;
  overwrite: boolean;
  'hook-name'?: string;
  'eval-out'?: string;
  processing?: string;
}

export const exportCommand: CommandModule<object, Args> = {
  command: 'export <checkpoint>',
  describe: 'write a checkpoint (any format sae-train reads, or hf://owner/repo/folder) as another tool\'s folder',
  builder: (y) => y
    .positional('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint folder (this project\'s, SAELens\', sparsify\'s) or hf://<owner>/<repo>/<folder>' })
    .option('format', { type: 'string', demandOption: true, describe: [...Object.entries(EXPORT_FORMATS), ['neuronpedia', NEURONPEDIA] as const].map(([k, v]) => `${k}: ${v.describe}`).join('; ') })
    .option('out', { type: 'string', demandOption: true, describe: 'output folder (must be empty or absent)' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace a non-empty --out' })
    .option('hook-name', { type: 'string', describe: 'the hook the SAE reads, for folders that do not say it (sparsify)' })
    .option('eval-out', { type: 'string', describe: 'neuronpedia: the eval.out folder that evaluated the checkpoint (its <run>/ holds the feature files)' })
    .option('processing', { choices: PROCESSING_LABELS, describe: 'the TransformerLens weight processing of the model the SAE was trained on, written as SAELens\' model_from_pretrained_kwargs; only for folders that do not record it (run folders whose activation cache is gone, imports that did not say). none = raw Hugging Face activations' })
    .epilog('Formats are documented in docs/formats.md.') as never,
  handler: async (a) => {
    if (a.format === 'neuronpedia') {
      let n = 0;
      const files = await writeFolder(a.out, a.overwrite, (tmp) => {
        const r = exportNeuronpedia(a.checkpoint, tmp, { evalOut: a['eval-out'] });
        n = r.features;
        return r.files;
      });
      info(`wrote ${a.out}/: ${n} feature(s) in ${files.length - 1} batch file(s) + skipped_indexes.json`);
      return;
    }
    const f = EXPORT_FORMATS[a.format];
    if (!f) throw new UserError(`--format ${a.format}: not a known format; choose one of ${[...Object.keys(EXPORT_FORMATS), 'neuronpedia'].join(', ')}.`);
    await exportCheckpoint(a.checkpoint, f.write, a.out, { overwrite: a.overwrite, hookName: a['hook-name'], processing: a.processing && checkProcessingLabel(a.processing, '--processing') });
  },
};
