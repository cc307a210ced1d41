import { runReport } from '../report/run.js';
import type { Stage } from './stage.js';

export const reportStage: Stage = {
  name: 'report',
  describe: 'write one self-contained HTML report (plots inline) and a Markdown summary from the other stages\' outputs',
  tensors: false,
  run: async (recipe) => {
    await runReport(recipe);
  },
};
