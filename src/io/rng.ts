import seedrandom from 'seedrandom';

/**
 * Seeded randomness (seedrandom's alea: fast, and its state is four numbers
 * that round-trip through JSON exactly, so a resumed run draws the same numbers).
 */
export type RngState = seedrandom.State.Alea;

export interface Rng {
  /** Uniform in [0, 1). */
  (): number;
  state(): RngState;
}

/** A generator from a seed string, or restored from a saved state. */
export function makeRng(seed: string, state?: RngState): Rng {
  return seedrandom.alea(seed, { state: state ? { ...state } : true }) as unknown as Rng;
}

/** One standard normal draw (Box–Muller; uses two uniforms). */
export function gaussian(rng: Rng): number {
  let u = rng();
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Uniform integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** n normal draws with standard deviation `std` (Box–Muller, both outputs of each pair used). */
export function gaussianArray(rng: () => number, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12), v = rng();
    const r = std * Math.sqrt(-2 * Math.log(u));
    a[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) a[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return a;
}
