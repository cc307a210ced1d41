import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UserError, fsError } from './errors.js';
import { writeFileAtomic } from './atomic.js';
import { bf16ToFloat32, float32ToHalf, halfToFloat32 } from './float16.js';

/**
 * safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the raw little-endian tensor bytes. Spec: huggingface/safetensors.
 */
export type StDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64' | 'U8' | 'I8' | 'I16' | 'BOOL';
const BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, U8: 1, I8: 1, I16: 2, BOOL: 1 };

export interface TensorInfo {
  dtype: StDtype;
  shape: number[];
  /** Byte range relative to the start of the data section. */
  begin: number;
  end: number;
}

/** A safetensors file opened for reading tensor by tensor (so multi-GB files need not fit in one Buffer). */
export interface SafetensorsFile {
  path: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Reads one tensor, converted to float32. */
  readF32(name: string): Float32Array;
  close(): void;
}

const MAX_HEADER = 100 * 1024 * 1024;

export function openSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw fsError(err, path, 'open a safetensors file');
  }
  try {
    const size = fstatSync(fd).size;
    const bad = (why: string) => new UserError(`${path}: not a valid safetensors file (${why}). Re-download or re-save it with safetensors' save_file.`);
    if (size < 8) throw bad(`file is ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const n64 = lenBuf.readBigUInt64LE(0); // printed as a BigInt: Number() would round 2^63 to 9223372036854776000
    if (n64 > BigInt(MAX_HEADER) || 8n + n64 > BigInt(size)) throw bad(`header length ${n64} does not fit in a file of ${size} bytes`);
    const n = Number(n64);
    const hbuf = Buffer.alloc(n);
    readSync(fd, hbuf, 0, n, 8);
    let header: unknown;
    try {
      header = JSON.parse(hbuf.toString('utf8'));
    } catch {
      throw bad('header is not JSON');
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw bad('header is not a JSON object');
    const dataStart = 8 + n;
    const { tensors, metadata } = parseHeader(header as Record<string, unknown>, size - dataStart, bad);
    const file: SafetensorsFile = {
      path,
      tensors,
      metadata,
      readF32(name) {
        const info = tensors.get(name);
        if (!info) throw new UserError(`${path}: has no tensor "${name}" (it has: ${[...tensors.keys()].slice(0, 12).join(', ')}${tensors.size > 12 ? ', …' : ''}).`);
        const bytes = Buffer.alloc(info.end - info.begin);
        let off = 0;
        while (off < bytes.length) {
          const r = readSync(fd, bytes, off, bytes.length - off, dataStart + info.begin + off);
          if (r === 0) throw bad(`unexpected end of file in tensor "${name}"`);
          off += r;
        }
        return decodeToF32(bytes, info.dtype, name, path);
      },
      close() {
        closeSync(fd);
      },
    };
    return file;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * The header's tensors, checked as safetensors' own reader checks them (Metadata::validate in
 * huggingface/safetensors): sorted by data_offsets, each tensor starts where the one before it ends (the first
 * at 0), holds exactly shape × dtype bytes, and the last ends at the end of the file. Overlapping offsets would
 * otherwise read one tensor from inside another's bytes.
 */
function parseHeader(header: Record<string, unknown>, dataLen: number, bad: (why: string) => Error): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let metadata: Record<string, string> = {};
  const list: (TensorInfo & { name: string })[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const t = v as { dtype: StDtype; shape: unknown[]; data_offsets: unknown[] } | null;
    if (!t || typeof t !== 'object' || !(t.dtype in BYTES) || !Array.isArray(t.shape) || !t.shape.every(isCount)) throw bad(`entry "${name}" is malformed (dtype, shape)`);
    if (!Array.isArray(t.data_offsets) || t.data_offsets.length !== 2 || !t.data_offsets.every(isCount)) throw bad(`tensor "${name}" has data_offsets ${JSON.stringify(t.data_offsets)}, not two byte offsets [begin, end]`);
    const [begin, end] = t.data_offsets as [number, number];
    list.push({ name, dtype: t.dtype, shape: t.shape as number[], begin, end });
  }
  const byOffset = [...list].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const [i, t] of byOffset.entries()) {
    if (t.begin !== at || t.end < t.begin) {
      const before = i === 0 ? 'the data section starts at 0' : `the tensor before it, "${byOffset[i - 1].name}", ends at ${at}`;
      throw bad(`tensor "${t.name}" has data_offsets [${t.begin}, ${t.end}] but ${before}: offsets must be contiguous, in order and not overlapping`);
    }
    const need = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    if (t.end - t.begin !== need) throw bad(`tensor "${t.name}" has ${t.end - t.begin} bytes but shape [${t.shape}] of ${t.dtype} needs ${need}`);
    at = t.end;
  }
  const last = byOffset.at(-1)?.name;
  if (at > dataLen) throw bad(`tensor "${last}" lies outside the file (its data ends at byte ${at} of the data section, which has ${dataLen} bytes; truncated?)`);
  if (at < dataLen) throw bad(`the file has ${dataLen - at} bytes after the last tensor's data${last ? ` ("${last}")` : ''}: the offsets must cover the data section exactly`);
  return { tensors: new Map(list.map(({ name, ...info }) => [name, info])), metadata };
}

function decodeToF32(bytes: Buffer, dtype: StDtype, name: string, path: string): Float32Array {
  // Copy into an aligned buffer: Buffer.alloc may hand out unaligned views.
  const ab = new ArrayBuffer(bytes.length);
  new Uint8Array(ab).set(bytes);
  switch (dtype) {
    case 'F32':
      return new Float32Array(ab);
    case 'F16':
      return halfToFloat32(new Uint16Array(ab));
    case 'BF16':
      return bf16ToFloat32(new Uint16Array(ab));
    case 'F64':
      return Float32Array.from(new Float64Array(ab));
    case 'I32':
      return Float32Array.from(new Int32Array(ab));
    case 'I64':
      return Float32Array.from(new BigInt64Array(ab), (v) => Number(v));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(new Uint8Array(ab));
    default:
      throw new UserError(`${path}: tensor "${name}" has dtype ${dtype}, which sae-train cannot read as float.`);
  }
}

/** Reads every tensor of a (small) file as float32. */
export function readSafetensors(path: string): { tensors: Record<string, { shape: number[]; data: Float32Array }>; metadata: Record<string, string> } {
  const f = openSafetensors(path);
  try {
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, info] of f.tensors) tensors[name] = { shape: info.shape, data: f.readF32(name) };
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}

export interface TensorToWrite {
  shape: number[];
  data: Float32Array;
  /** Storage dtype; F32 unless asked. */
  dtype?: 'F32' | 'F16';
}

/** Serialises tensors (in the given key order) to safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const bodies: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`safetensors: "${name}" has ${t.data.length} values, shape [${t.shape}] needs ${count}`);
    const dtype = t.dtype ?? 'F32';
    const body = dtype === 'F16' ? new Uint8Array(float32ToHalf(t.data).buffer) : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + body.byteLength] };
    bodies.push(body);
    off += body.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data section 8-byte aligned
  const hbytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbytes.length));
  return [len, hbytes, ...bodies];
}

/** Writes a safetensors file atomically (temporary name, then rename). */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
