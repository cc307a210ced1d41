import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, openSafetensors } from '../src/io/safetensors.js';
import { float32ToHalf, halfToFloat32, toHalfBits } from '../src/io/float16.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { UserError } from '../src/io/errors.js';
import { tmpDir } from './helpers/tmp.js';
import { python } from './helpers/python.js';

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
