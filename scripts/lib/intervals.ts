// Shared by the engine tests and the benchmark, which judge recorded worker histories alike.

/** A run of a task as a worker saw it: from the claim's answer to the completion being sent. */
export interface Interval {
  claimed_at: number;
  ended_at: number;
}

/** The largest sum of `value` over intervals that overlap (1 each by default). */
export function maxOverlap<T extends Interval>(
  runs: T[],
  value: (r: T) => number = () => 1,
): number {
  const points = runs
    .flatMap((r) => [{ t: r.claimed_at, d: value(r) }, { t: r.ended_at, d: -value(r) }])
    .sort((a, b) => a.t - b.t || a.d - b.d); // at equal times an end comes before a start
  let current = 0;
  let max = 0;
  for (const p of points) {
    current += p.d;
    max = Math.max(max, current);
  }
  return max;
}
