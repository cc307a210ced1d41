import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, openSafetensors } from '../src/io/safetensors.js';
import { float32ToHalf, halfToFloat32, toHalfBits } from '../src/io/float16.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { UserError } from '../src/io/errors.js';
import { tmpDir } from './helpers/tmp.js';
import { python } from './helpers/python.js';
import { writeRun } from './helpers/finetune-fixture.js';
import { identitySae } from './helpers/hand-saes.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';

const PY_READ = `
import json, struct, sys, numpy as np
# An independent safetensors reader: header length, JSON header, raw little-endian bytes.
buf = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', buf[:8])[0]
h = json.loads(buf[8:8+n])
out = {}
for k, v in h.items():
    if k == '__metadata__': continue
    a, b = v['data_offsets']
    dt = {'F32': '<f4', 'F16': '<f2'}[v['dtype']]
    arr = np.frombuffer(buf[8+n+a:8+n+b], dtype=dt).reshape(v['shape'])
    out[k] = [list(arr.shape), float(arr.astype(np.float64).sum()), float(arr.flat[-1])]
print(json.dumps(out))
`;

describe('safetensors', () => {
  const dir = tmpDir();
  it('round-trips F32 and F16 and parses with an independent numpy reader', () => {
    const a = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2);
    const b = Float32Array.from([1.5, -0.25, 65504, 6e-5]);
    const p = join(dir, 'x.safetensors');
    writeSafetensors(p, { a: { shape: [3, 4], data: a }, b: { shape: [4], data: b, dtype: 'F16' } }, { format: 'pt' });
    const r = readSafetensors(p);
    expect(r.metadata.format).toBe('pt');
    expect(Array.from(r.tensors.a.data)).toEqual(Array.from(a));
    expect(r.tensors.b.shape).toEqual([4]);
    expect(r.tensors.b.data[0]).toBe(1.5);
    expect(r.tensors.b.data[2]).toBe(65504);
    const py = JSON.parse(python(PY_READ, [p]));
    expect(py.a[0]).toEqual([3, 4]);
    expect(py.a[1]).toBeCloseTo(a.reduce((s, v) => s + v, 0), 5);
    expect(py.b[2]).toBeCloseTo(r.tensors.b.data[3], 8);
    // No temporary file is left behind.
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('rejects truncated files and bad headers with the file name', () => {
    const p = join(dir, 'y.safetensors');
    writeSafetensors(p, { w: { shape: [100], data: new Float32Array(100) } });
    const bytes = readFileSync(p);
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    expect(() => openSafetensors(cut)).toThrow(UserError);
    expect(() => openSafetensors(cut)).toThrow(/cut\.safetensors.*outside the file/);
    const junk = join(dir, 'junk.safetensors');
    writeFileSync(junk, Buffer.from('not a safetensors file at all'));
    expect(() => openSafetensors(junk)).toThrow(/junk\.safetensors: not a valid safetensors file/);
    expect(() => openSafetensors(join(dir, 'missing.safetensors'))).toThrow(/not found/);
  });
});

/** A safetensors file from a header object and the data section, as a hand-edited or hostile file would be. */
function rawSafetensors(path: string, header: Record<string, unknown>, data: Uint8Array, length?: bigint): string {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, data]));
  return path;
}

describe('safetensors offsets (as safetensors\' Metadata::validate checks them)', () => {
  const dir = tmpDir();
  const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
  const t = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

  it('refuses overlapping, gapped and trailing offsets, naming the file and the tensor', () => {
    // b_enc pointing into W_enc's bytes: read as it is, b_enc would silently be W_enc's second row.
    const overlap = rawSafetensors(join(dir, 'overlap.safetensors'), { W_enc: t([2, 2], 0, 16), b_enc: t([2], 8, 16) }, f32(1, 2, 3, 4));
    expect(() => openSafetensors(overlap)).toThrow(UserError);
    expect(() => openSafetensors(overlap)).toThrow(/overlap\.safetensors: not a valid safetensors file \(tensor "b_enc" has data_offsets \[8, 16\] but the tensor before it, "W_enc", ends at 16: offsets must be contiguous, in order and not overlapping\)/);
    const gap = rawSafetensors(join(dir, 'gap.safetensors'), { a: t([2], 0, 8), b: t([2], 12, 20) }, f32(1, 2, 3, 4, 5));
    expect(() => openSafetensors(gap)).toThrow(/gap\.safetensors.*tensor "b" has data_offsets \[12, 20\] but the tensor before it, "a", ends at 8/);
    const late = rawSafetensors(join(dir, 'late.safetensors'), { a: t([2], 4, 12) }, f32(0, 1, 2));
    expect(() => openSafetensors(late)).toThrow(/late\.safetensors.*tensor "a" has data_offsets \[4, 12\] but the data section starts at 0/);
    const trailing = rawSafetensors(join(dir, 'trailing.safetensors'), { a: t([2], 0, 8) }, f32(1, 2, 3));
    expect(() => openSafetensors(trailing)).toThrow(/trailing\.safetensors.*4 bytes after the last tensor's data \("a"\)/);
    const shape = rawSafetensors(join(dir, 'shape.safetensors'), { a: t([3], 0, 8) }, f32(1, 2));
    expect(() => openSafetensors(shape)).toThrow(/tensor "a" has 8 bytes but shape \[3\] of F32 needs 12/);
    const odd = rawSafetensors(join(dir, 'odd.safetensors'), { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8.5] } }, f32(1, 2));
    expect(() => openSafetensors(odd)).toThrow(/tensor "a" has data_offsets \[0,8\.5\], not two byte offsets/);
  });

  it('refuses a run folder whose b_enc points into W_enc (eval, finetune and consistency read through here)', () => {
    const run = join(dir, 'run');
    writeRun(run, identitySae(4), 'blocks.0.hook_resid_pre');
    const file = join(run, 'sae_weights.safetensors');
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    const w = header.W_enc.data_offsets[0];
    header.b_enc.data_offsets = [w + 16, w + 16 + header.b_enc.data_offsets[1] - header.b_enc.data_offsets[0]];
    rawSafetensors(file, header, bytes.subarray(8 + n));
    expect(() => loadCheckpoint(run)).toThrow(/run\/sae_weights\.safetensors: not a valid safetensors file \(tensor "b_enc" has data_offsets/);
  });

  it('accepts contiguous offsets in any header order (the reference sorts them) and empty tensors', () => {
    const p = rawSafetensors(join(dir, 'order.safetensors'), { b: t([2], 8, 16), e: t([0], 16, 16), a: t([2], 0, 8), __metadata__: { format: 'pt' } }, f32(1, 2, 3, 4));
    const r = readSafetensors(p);
    expect(Array.from(r.tensors.a.data)).toEqual([1, 2]);
    expect(Array.from(r.tensors.b.data)).toEqual([3, 4]);
    expect(r.tensors.e.data.length).toBe(0);
    expect(Object.keys(r.tensors)).toEqual(['b', 'e', 'a']); // header order kept
  });

  it('prints a huge header length exactly', () => {
    const p = rawSafetensors(join(dir, 'huge.safetensors'), {}, new Uint8Array(0), 2n ** 63n);
    expect(() => openSafetensors(p)).toThrow(/header length 9223372036854775808 does not fit in a file of \d+ bytes/);
  });
});

describe('float16', () => {
  it('matches numpy float16 conversion bit for bit', () => {
    const vals = [0, 1, -1, 0.1, 1 / 3, 65504, 65520, 1e-8, 5.96e-8, 6.1e-5, -2.5e-6, 3.14159, 1e5];
    const ours = Array.from(float32ToHalf(Float32Array.from(vals)));
    const ref = JSON.parse(python(`import numpy as np, json, sys; print(json.dumps(np.array(json.loads(sys.argv[1]), dtype=np.float32).astype(np.float16).view(np.uint16).tolist()))`, [JSON.stringify(vals)]));
    expect(ours).toEqual(ref);
    const back = halfToFloat32(Uint16Array.from(ref));
    expect(back[3]).toBeCloseTo(0.1, 3);
    expect(toHalfBits(NaN) & 0x7c00).toBe(0x7c00);
  });
});

describe('atomic writes', () => {
  it('writes under a temporary name and renames', () => {
    const dir = tmpDir();
    const p = join(dir, 'sub', 'f.json');
    writeFileAtomic(p, '{"a":1}');
    expect(existsSync(p)).toBe(true);
    expect(readdirSync(join(dir, 'sub'))).toEqual(['f.json']);
  });
});
