/**
 * TransformerLens' weight processing (HookedTransformer.from_pretrained defaults), on host weights:
 *
 * fold_ln: each LayerNorm's gain and bias are folded into the weights that read its output
 *   (ln_1 → c_attn, ln_2 → c_fc, ln_f → the unembedding): W' = diag(g)·W, b' = b + β·W; the gain becomes 1 and
 *   the bias 0, and W' is centred over its input (d_model) axis, which changes nothing because a LayerNorm's
 *   output has zero mean. Logits are unchanged; ln hooks then hold the plain normalized values (TL's LNPre).
 * center_writing_weights: every weight writing to the residual stream (W_E, W_pos, attn and MLP c_proj and
 *   their biases) has its mean over d_model removed, so the residual stream is mean-free at every position.
 *   Every LayerNorm subtracts the mean anyway, so logits are unchanged; residual hooks become x − mean(x).
 * Either option unties the unembedding first (lm_head = a copy of wte), as TL keeps W_U apart from W_E.
 * Not applied: TL's center_unembed (shifts logits by a per-position constant).
 */
import type { Gpt2Config } from './config.js';
import type { Gpt2Weights, HostTensor } from './weights.js';

export interface ProcessingOptions {
  foldLn: boolean;
  centerWritingWeights: boolean;
}

/** The manifest's model.processing label: "none", "fold_ln", "center_writing_weights" or both joined by "+". */
export function processingLabel(o: ProcessingOptions): string {
  const parts = [o.foldLn && 'fold_ln', o.centerWritingWeights && 'center_writing_weights'].filter(Boolean);
  return parts.length ? parts.join('+') : 'none';
}

const copy = (t: HostTensor): HostTensor => ({ shape: t.shape.slice(), data: t.data.slice() });

/**
 * Folds LayerNorm (g, β over [D]) into a reading weight W [D, N] and bias b [N] (Conv1D layout, y = x·W + b),
 * then centres W over its D axis. Returns [W', b'].
 */
function foldInto(g: Float32Array, beta: Float32Array, W: HostTensor, b: Float32Array): [HostTensor, Float32Array] {
  const [D, N] = W.shape;
  const w = new Float32Array(D * N);
  const bias = Float64Array.from(b);
  const mean = new Float64Array(N);
  for (let i = 0; i < D; i++)
    for (let j = 0; j < N; j++) {
      const v = W.data[i * N + j];
      bias[j] += beta[i] * v;
      w[i * N + j] = g[i] * v;
      mean[j] += g[i] * v;
    }
  for (let j = 0; j < N; j++) mean[j] /= D;
  for (let i = 0; i < D; i++) for (let j = 0; j < N; j++) w[i * N + j] -= mean[j];
  return [{ shape: [D, N], data: w }, Float32Array.from(bias)];
}

/** Removes each row's mean over its last axis (rows of [R, D]); for a 1-D bias, its overall mean. */
function centerRows(t: HostTensor): HostTensor {
  const D = t.shape[t.shape.length - 1];
  const out = t.data.slice();
  for (let r = 0; r < out.length / D; r++) {
    let m = 0;
    for (let j = 0; j < D; j++) m += out[r * D + j];
    m /= D;
    for (let j = 0; j < D; j++) out[r * D + j] -= m;
  }
  return { shape: t.shape.slice(), data: out };
}

const ones = (n: number) => ({ shape: [n], data: new Float32Array(n).fill(1) });
const zeros = (n: number) => ({ shape: [n], data: new Float32Array(n) });

/** Applies the processing to a copy of the weights (the input is not modified). */
export function processWeights(c: Gpt2Config, w: Gpt2Weights, o: ProcessingOptions): Gpt2Weights {
  if (!o.foldLn && !o.centerWritingWeights) return w;
  const out: Gpt2Weights = { ...w };
  if (!out['lm_head.weight']) out['lm_head.weight'] = copy(w['wte.weight']);
  const D = c.n_embd;
  if (o.foldLn) {
    const fold = (ln: string, lin: string) => {
      const [W, b] = foldInto(w[`${ln}.weight`].data, w[`${ln}.bias`].data, w[`${lin}.weight`], w[`${lin}.bias`].data);
      out[`${lin}.weight`] = W;
      out[`${lin}.bias`] = { shape: [b.length], data: b };
      out[`${ln}.weight`] = ones(D);
      out[`${ln}.bias`] = zeros(D);
    };
    for (let l = 0; l < c.n_layer; l++) {
      fold(`h.${l}.ln_1`, `h.${l}.attn.c_attn`);
      fold(`h.${l}.ln_2`, `h.${l}.mlp.c_fc`);
    }
    // The unembedding is [V, D] (logits = x·Wᵀ + b): fold through its transpose, as [D, V].
    const U = out['lm_head.weight'];
    const V = U.shape[0];
    const ut = new Float32Array(D * V);
    for (let v = 0; v < V; v++) for (let i = 0; i < D; i++) ut[i * V + v] = U.data[v * D + i];
    const [Wt, b] = foldInto(w['ln_f.weight'].data, w['ln_f.bias'].data, { shape: [D, V], data: ut }, w['lm_head.bias']?.data ?? new Float32Array(V));
    const u = new Float32Array(V * D);
    for (let v = 0; v < V; v++) for (let i = 0; i < D; i++) u[v * D + i] = Wt.data[i * V + v];
    out['lm_head.weight'] = { shape: [V, D], data: u };
    out['lm_head.bias'] = { shape: [V], data: b };
    out['ln_f.weight'] = ones(D);
    out['ln_f.bias'] = zeros(D);
  }
  if (o.centerWritingWeights) {
    out['wte.weight'] = centerRows(out['wte.weight']);
    out['wpe.weight'] = centerRows(out['wpe.weight']);
    for (let l = 0; l < c.n_layer; l++)
      for (const p of [`h.${l}.attn.c_proj`, `h.${l}.mlp.c_proj`]) {
        out[`${p}.weight`] = centerRows(out[`${p}.weight`]);
        out[`${p}.bias`] = centerRows(out[`${p}.bias`]);
      }
  }
  return out;
}
