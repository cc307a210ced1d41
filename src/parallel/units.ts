/** A splittable stage's independent units, as `--part` splits them: for workers, Slurm and `sae-train plan`. */
export interface StageUnits {
  /** What each unit is (run names, shard files, checkpoints, seed pairs), in unit order. */
  names: string[];
  /** The unit indices of each of `count` parts (src/parallel/split.ts). */
  split(count: number): number[][];
  /** Estimated peak memory of a worker doing these units (process base included). */
  bytes(units: number[]): number;
  /** Every unit is finished already: the stage runs in this process (it only reuses), no workers started. */
  finished?: boolean;
}

/** Peak memory of the largest part when split `count` ways. */
export const bytesPerWorker = (u: StageUnits, count: number): number => Math.max(0, ...u.split(count).map((p) => u.bytes(p)));

/** A part's units in a few words (its first names), for failure messages and the plan. */
export function describeUnits(u: StageUnits, part: number[], max = 4): string {
  const names = part.map((i) => u.names[i]);
  return names.length === 0 ? 'nothing' : names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}
