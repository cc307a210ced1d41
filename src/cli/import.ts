import type { CommandModule } from 'yargs';
import { importCheckpoint } from '../sae/exchange.js';

interface Args {
  source: string;
  out: string;
  overwrite: boolean;
  'hook-name'?: string;
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
    .epilog('Pickle files (.pt, dictionary_learning\'s ae.pt) are refused with the conversion to safetensors spelled out. Formats: docs/formats.md.') as never,
  handler: async (a) => {
    await importCheckpoint(a.source, a.out, { overwrite: a.overwrite, hookName: a['hook-name'] });
  },
};
