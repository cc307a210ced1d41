import { Bool, Field, FixedSizeList, Float32, Int32, Table, Utf8, makeData, makeVector, tableFromIPC, tableToIPC, Vector, vectorFromArray } from 'apache-arrow';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { UserError, fsError } from './errors.js';

/**
 * A small generic Arrow table writer/reader (IPC *file* format: pyarrow.feather.read_table,
 * polars.read_ipc). Columns are typed arrays (Int32 / Float32 / Float64), fixed-size lists of float32 or int32,
 * or plain arrays of strings (Utf8) or booleans (Bool).
 */

/** A column of `rows` fixed-size float32 (or int32) vectors, row-major. */
export interface VectorColumn {
  listSize: number;
  values: Float32Array | Int32Array;
}

export type ArrowColumn = Int32Array | Float32Array | Float64Array | VectorColumn | string[] | boolean[];

function toVector(name: string, col: ArrowColumn, rows: number): Vector {
  if (Array.isArray(col)) {
    if (col.length !== rows) throw new Error(`arrow column "${name}": ${col.length} values, expected ${rows}`);
    return typeof col[0] === 'boolean' ? vectorFromArray(col as boolean[], new Bool()) : vectorFromArray(col as string[], new Utf8());
  }
  if (ArrayBuffer.isView(col)) {
    if (col.length !== rows) throw new Error(`arrow column "${name}": ${col.length} values, expected ${rows}`);
    return makeVector(col);
  }
  if (col.values.length !== rows * col.listSize) throw new Error(`arrow column "${name}": ${col.values.length} values, expected ${rows}×${col.listSize}`);
  const child = col.values instanceof Int32Array
    ? makeData({ type: new Int32(), length: rows * col.listSize, nullCount: 0, data: col.values })
    : makeData({ type: new Float32(), length: rows * col.listSize, nullCount: 0, data: col.values });
  const type = new FixedSizeList(col.listSize, new Field('item', child.type, false));
  return new Vector([makeData({ type, length: rows, nullCount: 0, child })]);
}

/** Serialises columns (all of `rows` rows) to Arrow IPC file bytes, in the given column order. */
export function encodeArrowTable(columns: Record<string, ArrowColumn>, rows: number): Uint8Array {
  const vecs: Record<string, Vector> = {};
  for (const [name, col] of Object.entries(columns)) vecs[name] = toVector(name, col, rows);
  return tableToIPC(new Table(vecs), 'file');
}

/** Writes an Arrow IPC file atomically. */
export function writeArrowTable(path: string, columns: Record<string, ArrowColumn>, rows: number): void {
  writeFileAtomic(path, encodeArrowTable(columns, rows));
}

/** Reads an Arrow IPC file (for tests and tools). */
export function readArrowTable(path: string): Table {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw fsError(err, path, 'read an Arrow file');
  }
  try {
    return tableFromIPC(bytes);
  } catch (err) {
    throw new UserError(`${path}: not a readable Arrow IPC file (${(err as Error).message}).`);
  }
}
