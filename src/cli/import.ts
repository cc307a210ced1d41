import type { CommandModule } from 'yargs';
import { importCheckpoint } from '../sae/exchange.js';
import { checkProcessingLabel, PROCESSING_LABELS } from '../sae/provenance.js';

interface Args {
  source: string;
  out: string;
  overwrite: boolean;
  'hook-name'?: string;
  processing?: string;
}

/** `sae-train import <source> --out DIR`: another tool's SAE as a run folder of this project. */
export const importCommand: CommandModule<object, Args> = {
  command: 'import <source>',
  describe: 'convert a SAELens or sparsify checkpoint (folder or hf://owner/repo/folder) into a run folder of this project',
  builder: (y) => y
    .positional('source', { type: 'string', demandOption: true, describe: 'SAELens 5.x/6.x or sparsify folder, or hf://<owner>/<repo>/<folder>' })
    .option('out', { type: 'string', demandOption: true, describe: 'the run folder to write (must be empty or absent)' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace a non-empty --out' })
    .option('hook-name', { type: 'string', describe: 'the hook the SAE reads, for folders that do not say it (sparsify)' })
    .option('processing', { choices: PROCESSING_LABELS, describe: 'the TransformerLens weight processing of the model the SAE was trained on (recorded as model_from_pretrained_kwargs), for a folder that does not say it, e.g. center_writing_weights for hf://jbloom/GPT2-Small-SAEs-Reformatted (SAELens\' pretrained_saes.yaml); eval then runs the model with it' })
    .epilog('Pickle files (.pt, dictionary_learning\'s ae.pt) are refused with the conversion to safetensors spelled out. Formats: docs/formats.md.') as never,
  handler: async (a) => {
    await importCheckpoint(a.source, a.out, { overwrite: a.overwrite, hookName: a['hook-name'], processing: a.processing && checkProcessingLabel(a.processing, '--processing') });
  },
};
