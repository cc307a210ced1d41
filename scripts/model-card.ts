/**
 * The embedded model's card (models/gpt2-sotu/README.md), rendered from what training and evaluation wrote
 * (training.json, eval.json, loss_curve.csv), so that every number in it is a measured one.
 */

/** training.json, as scripts/train-model.ts writes it. */
export interface TrainingRecord {
  settings: Record<string, number>;
  parameters: number;
  steps: number;
  tokens: number;
  predicted_tokens: number;
  final_train_loss: number;
  final_train_loss_steps: string;
  final_monitor_heldout_ce: number | null;
  wall_time_s: number;
  tokens_per_s: number;
  data: { source: string; split: string; addresses: number; corpus_tokens: number; windows: number; epochs: number };
  machine: { cpu: string; cores: number; node: string; backend: string };
  finished: string;
  /** A run continued from a saved model (train-model --init): that model's folder and its own training record. */
  init?: { from: string; training: TrainingRecord | null };
}

/** The stages of training, oldest first: a run from --init follows the stages of the model it started from. */
export function trainingStages(t: TrainingRecord): TrainingRecord[] {
  return [...(t.init?.training ? trainingStages(t.init.training) : []), t];
}

/** eval.json, as scripts/eval-model.ts writes it. */
export interface EvalRecord {
  model: string;
  weights_dtype: string;
  heldout: { split: string; addresses: number; all_windows: boolean; windows: number; context: number; predicted_tokens: number; ce: number };
  test_slice: { file: string; windows: number; predicted_tokens: number; ce: number; ce_float32_weights: number | null };
  baselines: { uniform: number; unigram_train_split: number; unigram_predicted_tokens: number };
  sample: { prompt: string; decoding: string; text: string };
  backend: string;
  eval_wall_time_s: number;
  /** Residual-stream spectrum per hook over every position of the test slice (scripts/model-eval-lib.ts residualSpectra). */
  spectrum?: { windows: number; rows: number; hooks: Record<string, SpectrumSummary> };
}

import { DEGENERATE_TOP5, type SpectrumSummary } from '../src/activations/spectrum.js';
import { trainModelFlags } from './train-model-settings.js';

/** The card's spectrum rows, as test/embedded-model.test.ts reads them back: hook → top-5 share. */
export function parseSpectrumTop5(card: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of card.matchAll(/^\| `(blocks\.\d+\.hook_resid_pre)` \| [0-9.]+% \| ([0-9.]+)% \|/gm)) out[m[1]] = Number(m[2]) / 100;
  return out;
}

function spectrumSection(e: EvalRecord): string {
  if (!e.spectrum) return 'Not measured yet: run `npm run eval:model -- --spectrum-only`.';
  const rows = Object.entries(e.spectrum.hooks).map(([h, s]) =>
    `| \`${h}\` | ${(100 * s.top1).toFixed(1)}% | ${(100 * s.top5).toFixed(1)}% | ${(100 * s.top10).toFixed(1)}% | ${s.effective_rank.toFixed(1)} | ${s.top5 > DEGENERATE_TOP5 ? '**yes**' : 'no'} |`);
  return `Covariance eigenvalues of the residual stream over all ${int(e.spectrum.rows)} positions of the test slice (${e.spectrum.windows} windows;
\`src/activations/spectrum.ts\`, the same measure harvest records in a cache's manifest). Where the top five principal
components hold more than ${100 * DEGENERATE_TOP5}% of the variance, SAE features are poorly determined and agreement between SAEs is
inflated (sae-train warns, and consistency shows chance baselines).

| hook | top-1 | top-5 | top-10 | effective rank | degenerate |
|---|---:|---:|---:|---:|---|
${rows.join('\n')}`;
}

/** The line test/embedded-model.test.ts reads the test slice's CE from. */
export const TEST_SLICE_LINE = 'Test-slice CE';
export function parseTestSliceCe(card: string): number | undefined {
  const m = new RegExp(`${TEST_SLICE_LINE}[^*\\n]*\\*\\*([0-9.]+)\\*\\*`).exec(card);
  return m ? Number(m[1]) : undefined;
}

const f = (x: number, d = 4) => x.toFixed(d);
const int = (x: number) => x.toLocaleString('en-US');

function curveTable(csv: string): string {
  const [head, ...lines] = csv.trim().split('\n');
  const cols = head.split(',');
  const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
  const shown = rows.filter((r) => r.heldout_ce !== '');
  const staged = cols.includes('stage');
  const out = [`|${staged ? ' stage |' : ''} step | tokens | train loss (mean of the last 10 steps) | held-out CE (monitoring windows) | lr |`, `|${staged ? '---:|' : ''}---:|---:|---:|---:|---:|`];
  for (const r of shown) out.push(`|${staged ? ` ${r.stage} |` : ''} ${r.step} | ${int(Number(r.tokens))} | ${r.train_loss || '–'} | ${r.heldout_ce} | ${r.lr} |`);
  return out.join('\n');
}

const min = (x: number) => `${(x / 60).toFixed(0)} min`;

/** One stage's rows of the training table. */
function stageRows(t: TrainingRecord): Record<string, string> {
  const s = t.settings;
  return {
    'starts from': t.init ? `the weights of stage ${trainingStages(t).length - 1} (fresh Adam state and schedule)` : `random initialisation (seed ${s.seed})`,
    steps: `${int(t.steps)} of ${s.batch} windows × ${s.n_positions} tokens`,
    'tokens seen': `${int(t.tokens)} (${int(t.predicted_tokens)} predicted positions; ${t.data.epochs} epochs of the training split)`,
    optimizer: `Adam (β ${s.beta1}, ${s.beta2}; ε ${s.eps}), peak lr ${s.lr}, ${s.warmup_steps} warm-up steps, cosine decay to ${s.min_lr_ratio}×, gradient clipping at norm ${s.grad_clip}, no weight decay, batch order seed ${s.seed}`,
    loss: s.unembed_subset
      ? 'next-token cross-entropy, softmax over the token ids of the training split plus one rest logit for the other rows (their Gaussian moment-generating function; `src/model/train-vocab.ts`), fused gradient'
      : 'next-token cross-entropy over all 50,257 tokens (softmax gradient fused, `src/model/train-lm.ts`)',
    'final training loss': `${f(t.final_train_loss)} nats (${t.final_train_loss_steps})`,
    'final held-out CE (monitor)': t.final_monitor_heldout_ce === null ? '–' : f(t.final_monitor_heldout_ce),
    machine: `${t.machine.cpu}, ${t.machine.cores} cores shared with other work; Node ${t.machine.node}; tfjs ${t.machine.backend}`,
    'wall time': `${min(t.wall_time_s)} of training loop, monitor and checkpoints included (${int(t.tokens_per_s)} tokens/s)`,
  };
}

function trainingTable(t: TrainingRecord): string {
  const stages = trainingStages(t).map(stageRows);
  if (stages.length === 1) return ['| | |', '|---|---|', ...Object.entries(stages[0]).map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  const head = `| | ${stages.map((_, i) => `stage ${i + 1}`).join(' | ')} |`;
  const keys = Object.keys(stages[0]);
  return [head, `|---|${stages.map(() => '---').join('|')}|`, ...keys.map((k) => `| ${k} | ${stages.map((r) => r[k]).join(' | ')} |`)].join('\n');
}

/** The train-model command of every stage, each in its own work folder, the last writing models/gpt2-sotu. */
function reproduceCommands(t: TrainingRecord): string {
  const st = trainingStages(t);
  return st.map((x, i) => {
    const out = i === st.length - 1 ? 'models/gpt2-sotu' : `.model-work/stage${i + 1}/out`;
    const flags = [...trainModelFlags(x.settings), ...(i > 0 ? [`--init .model-work/stage${i}/out`] : []), `--work .model-work/stage${i + 1}`, `--out ${out}`];
    return `npm run train:model -- ${flags.join(' ')}    # stage ${i + 1}, ~${min(x.wall_time_s)} here`;
  }).join('\n');
}

function stagesTotal(t: TrainingRecord): string {
  const st = trainingStages(t);
  if (st.length === 1) return '';
  const tokens = st.reduce((a, x) => a + x.tokens, 0), wall = st.reduce((a, x) => a + x.wall_time_s, 0);
  return `\nIn all: ${int(tokens)} tokens (${+(st.reduce((a, x) => a + x.data.epochs, 0)).toFixed(3)} epochs) in ${min(wall)} of training loop.
Stage ${st.length} was run with \`--init\` from the stage-${st.length - 1} model, once faster matmuls (native BLAS) made more training affordable.\n`;
}

export function renderModelCard(t: TrainingRecord, e: EvalRecord, curveCsv: string): string {
  const s = t.settings;
  return `# gpt2-sotu: a small GPT-2 trained on State of the Union addresses

The model that ships with sae-train, so that the quickstart (\`npx sae-train recipes/quickstart.yaml\`) runs on a fresh
clone without downloading anything. It is a GPT-2 in architecture and format (Hugging Face \`config.json\` +
\`model.safetensors\`, GPT-2's tokenizer and 50,257-token vocabulary), trained from scratch by
\`scripts/train-model.ts\` with this project's own GPT-2 forward (\`src/model/gpt2.ts\`) and tfjs autodiff, on a 2-core CPU.
It is tiny and briefly trained: a realistic stand-in for SAE experiments, not a useful language model.

## Model

| | |
|---|---|
| architecture | GPT-2 (pre-LN, learned positions, GELU tanh, tied unembedding) |
| layers / d_model / heads / context | ${s.n_layer} / ${s.n_embd} / ${s.n_head} / ${s.n_positions} |
| vocabulary | 50,257 (GPT-2 BPE, js-tiktoken's gpt2 ranks) |
| parameters | ${int(t.parameters)} (of which ${int(50257 * s.n_embd)} in the token embedding) |
| weights | \`model.safetensors\`, float16, Hugging Face names (\`wte.weight\`, \`h.0.attn.c_attn.weight\`, …) |

## Data

${t.data.source}: the State of the Union addresses, 1790–2021, works of the US Government and in the public
domain (the package's data are under CC0 / PDDL). Split by whole addresses (\`scripts/sotu.ts\`): addresses of years
ending in 5 are held out (${e.heldout.addresses} addresses); the model trained on the other ${t.data.addresses}
(${int(t.data.corpus_tokens)} tokens, ${int(t.data.windows)} windows). Windows are cut as the pipeline cuts them
(\`src/model/corpus.ts\`): ${s.n_positions} tokens, \`<|endoftext|>\` (50256) first in every window and between addresses.

## Training

${trainingTable(t)}
${stagesTotal(t)}
Loss curve (every row of \`loss_curve.csv\`, which has one row per 10 steps, where the held-out monitor was measured;
the monitor is ${s.monitor_windows} windows spread over the held-out split, used for nothing but this table${trainingStages(t).length > 1 ? '; step counts within a stage, tokens from the start of stage 1' : ''}):

${curveTable(curveCsv)}

## Evaluation

Measured by \`scripts/eval-model.ts\` on the stored float16 weights as \`loadGpt2\` loads them, with the model's own
\`meanCrossEntropy\` (nats per predicted token; the first position of each window, BOS, is not predicted):

| | predicted tokens | CE (nats) |
|---|---:|---:|
| **held-out split** (${e.heldout.all_windows ? 'all' : 'ONLY THE FIRST'} ${int(e.heldout.windows)} windows of the ${e.heldout.addresses} held-out addresses) | ${int(e.heldout.predicted_tokens)} | **${f(e.heldout.ce)}** |
| test slice (first ${e.test_slice.windows} windows of \`${e.test_slice.file}\`) | ${int(e.test_slice.predicted_tokens)} | ${f(e.test_slice.ce)} |
| test slice, float32 weights before float16 storage | ${int(e.test_slice.predicted_tokens)} | ${e.test_slice.ce_float32_weights === null ? 'not measured' : f(e.test_slice.ce_float32_weights)} |
| baseline: uniform over the vocabulary | | ${f(e.baselines.uniform)} |
| baseline: unigram frequencies of the training split (add-one), on the whole held-out split | ${int(e.baselines.unigram_predicted_tokens)} | ${f(e.baselines.unigram_train_split)} |

${TEST_SLICE_LINE} (checked by \`test/embedded-model.test.ts\` within 1%): **${f(e.test_slice.ce)}** nats.

## Residual-stream spectrum

${spectrumSection(e)}

Greedy continuation (${e.sample.decoding}):

> ${e.sample.text.replace(/\n/g, ' ')}

## Reproduce

\`\`\`sh
npm ci
${reproduceCommands(t)}
npm run eval:model -- --work .model-work/stage${trainingStages(t).length}    # held-out CE, eval.json and this card (~${min(e.eval_wall_time_s)})
\`\`\`
Each command is resumable: interrupt it and run it again to continue (\`--fresh\` starts its stage over). Settings
not given are \`DEFAULTS\` in \`scripts/train-model-settings.ts\`; \`training.json\` records the ones used.
Initialisation and batch order are seeded, so a rerun on the backend a stage names retraces its curve (an interrupted
and resumed run was checked to reproduce an uninterrupted one exactly); other backends, and builds of the native BLAS
addon from before 2026-12-02 (when its products were cut into thread-independent tiles), differ in floating-point rounding.
`;
}
