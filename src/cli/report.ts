import { dirname, join } from 'node:path';
import { runReport, summaryPath } from '../report/run.js';
import { browsersDirName } from '../report/features.js';
import { requireSection, type Stage } from './stage.js';

export const reportStage: Stage = {
  name: 'report',
  describe: 'write one self-contained HTML report (plots inline) and a Markdown summary from the other stages\' outputs',
  tensors: false,
  outputs: (recipe) => {
    const out = requireSection(recipe, 'report').out;
    return [out, summaryPath(out), join(dirname(out), browsersDirName(out))].map((path) => ({ path, key: 'report.out' }));
  },
  run: async (recipe) => {
    await runReport(recipe);
  },
};
