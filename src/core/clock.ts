/**
 * malla's write clock: a Lamport clock that starts from wall time (a hybrid logical clock folded
 * into one integer). Each write gets `max(now_ms, last + 1)`, and every clock seen in a merge
 * raises `last`, so a write made after seeing another is always ordered after it, even between
 * machines whose clocks disagree.
 *
 * On the wire the value is a decimal string, because LibreMesh's Lua routers pass numbers through
 * luci.jsonc, which truncates integers to 32 bits on some builds; strings travel through unchanged.
 */
export const CLOCK_PATTERN = /^(0|[1-9][0-9]{0,15})$/

/**
 * Largest clock value a node issues: beyond 2^53 a JavaScript number loses integer precision.
 * Entries must carry a clock strictly below it (see `isValidClock`), so a node can always write after them.
 */
export const MAX_CLOCK = Number.MAX_SAFE_INTEGER

/** A wire clock: a canonical decimal string below MAX_CLOCK. */
export function isValidClock(clock: string): boolean {
  return CLOCK_PATTERN.test(clock) && Number(clock) < MAX_CLOCK
}

export class WriteClock {
  private last = 0
  constructor(private readonly now: () => number = Date.now) {}

  /** A fresh clock value, greater than every value this clock issued or observed. */
  tick(): string {
    this.last = Math.min(MAX_CLOCK, Math.max(Math.floor(this.now()), this.last + 1))
    return String(this.last)
  }

  /** Take a clock seen on a remote entry into account. */
  observe(clock: string | undefined): void {
    if (clock === undefined) return
    const n = Number(clock)
    if (n > this.last && n <= MAX_CLOCK) this.last = n
  }
}

/** Orders two wire clock strings numerically (they carry no leading zeros, so length first). */
export function compareClocks(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length
  return a < b ? -1 : a > b ? 1 : 0
}
