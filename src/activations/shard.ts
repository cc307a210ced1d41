import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  Field, FixedSizeList, Float16, Float32, Table, makeData, makeVector, tableFromIPC, tableToIPC, Vector,
} from 'apache-arrow';
import { writeFileAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import { float32ToHalf, halfToFloat32 } from '../io/float16.js';
import { firstBadValue, rowNormStats, type NormStats } from './norms.js';

/** One shard's rows: per-token metadata and, per hook, activations [rows, d_in] row-major. */
export interface ShardRows {
  seq: Int32Array;
  pos: Int32Array;
  token: Int32Array;
  acts: Record<string, Float32Array>;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function actsVector(acts: Float32Array, rows: number, dIn: number, dtype: 'float32' | 'float16'): Vector {
  const child = dtype === 'float16'
    ? makeData({ type: new Float16(), length: rows * dIn, nullCount: 0, data: float32ToHalf(acts) })
    : makeData({ type: new Float32(), length: rows * dIn, nullCount: 0, data: acts });
  const type = new FixedSizeList(dIn, new Field('item', child.type, false));
  return new Vector([makeData({ type, length: rows, nullCount: 0, child })]);
}

/** Serialises rows to the Arrow IPC file format (what pyarrow.feather / polars.read_ipc read). */
export function encodeShard(rows: ShardRows, dIn: number, dtype: 'float32' | 'float16'): Uint8Array {
  const n = rows.seq.length;
  const cols: Record<string, Vector> = {
    seq: makeVector(rows.seq),
    pos: makeVector(rows.pos),
    token: makeVector(rows.token),
  };
  for (const [hook, acts] of Object.entries(rows.acts)) {
    if (acts.length !== n * dIn) throw new Error(`shard: hook ${hook} has ${acts.length} values, expected ${n}×${dIn}`);
    cols[hook] = actsVector(acts, n, dIn, dtype);
  }
  return tableToIPC(new Table(cols), 'file');
}

/** float16's largest finite value: larger magnitudes are stored as ±Infinity. */
const HALF_MAX = 65504;

/**
 * Writes a shard atomically and returns its manifest entry's fields: row count, sha256, per-hook norm statistics.
 * Refuses rows that are not finite (or would not be once stored as float16), so that a cache never holds them.
 */
export function writeShard(path: string, rows: ShardRows, dIn: number, dtype: 'float32' | 'float16'): { rows: number; sha256: string; norms: Record<string, NormStats> } {
  for (const [hook, acts] of Object.entries(rows.acts)) {
    const bad = firstBadValue(acts, dIn, dtype === 'float16' ? HALF_MAX : Infinity);
    if (!bad) continue;
    const why = Number.isFinite(bad.value)
      ? `, beyond float16's ±${HALF_MAX} (it would be stored as ±Infinity). Harvest with dtype: float32`
      : `. The model produced a non-finite activation: check its weights (e.g. with \`sae-train eval\` or by loading them in Python)`;
    throw new UserError(`${path}: refusing to write it: hook "${hook}" has ${bad.value} at row ${bad.row} of the shard, column ${bad.col}${why}.`);
  }
  const bytes = encodeShard(rows, dIn, dtype);
  writeFileAtomic(path, bytes);
  const norms = Object.fromEntries(Object.entries(rows.acts).map(([h, a]) => [h, rowNormStats(a, dIn)]));
  return { rows: rows.seq.length, sha256: sha256(bytes), norms };
}

/** Reads a shard file's bytes, verifying the sha256 recorded in the manifest when given. */
export function readShardBytes(path: string, expectedSha256?: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw fsError(err, path, 'read an activation shard');
  }
  if (expectedSha256 && sha256(bytes) !== expectedSha256)
    throw new UserError(`${path}: checksum mismatch with manifest.json (the shard is truncated or was modified). Delete the cache folder's damaged shard and re-run \`sae-train harvest\` to rewrite it.`);
  return bytes;
}

/** A FixedSizeList<Float32 | Float16>[width] column as float32 [rows, width] row-major. */
export function fixedSizeListToF32(col: Vector, rows: number): { values: Float32Array; width: number } {
  const width = (col.type as FixedSizeList).listSize;
  const out = new Float32Array(rows * width);
  let off = 0;
  for (const chunk of col.data) {
    const child = chunk.children[0];
    const vals = child.values as Float32Array | Uint16Array;
    const len = chunk.length * width;
    const view = vals.subarray(chunk.offset * width + child.offset, chunk.offset * width + child.offset + len);
    if (vals instanceof Uint16Array) halfToFloat32(view as Uint16Array, out.subarray(off, off + len));
    else out.set(view as Float32Array, off);
    off += len;
  }
  return { values: out, width };
}

/** Decodes a shard; `hooks` limits which activation columns are materialised. */
export function decodeShard(bytes: Uint8Array, path: string, hooks?: string[]): ShardRows & { dIn: number } {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new UserError(`${path}: not a readable Arrow IPC file (${(err as Error).message}). Re-run harvest to rewrite it.`);
  }
  const int32 = (name: string): Int32Array => {
    const col = table.getChild(name);
    if (!col) throw new UserError(`${path}: has no column "${name}".`);
    return col.toArray() as Int32Array;
  };
  const names = hooks ?? table.schema.fields.map((f) => f.name).filter((n) => !['seq', 'pos', 'token'].includes(n));
  const acts: Record<string, Float32Array> = {};
  let dIn = 0;
  for (const hook of names) {
    const col = table.getChild(hook);
    if (!col) throw new UserError(`${path}: has no column for hook "${hook}" (columns: ${table.schema.fields.map((f) => f.name).join(', ')}).`);
    const c = fixedSizeListToF32(col, table.numRows);
    dIn = c.width;
    acts[hook] = c.values;
  }
  return { seq: int32('seq'), pos: int32('pos'), token: int32('token'), acts, dIn };
}

export function readShard(path: string, expectedSha256?: string, hooks?: string[]): ShardRows & { dIn: number } {
  return decodeShard(readShardBytes(path, expectedSha256), path, hooks);
}
