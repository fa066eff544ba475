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

/**
 * How far ahead of this node's wall clock a clock seen on a received entry may move its own clock: 1000
 * years. Honest clocks differ by decades at most (a router with no real-time clock boots at 1970 while its
 * neighbours run at the current date), so they keep ordering each other's writes; but an entry that claims
 * a clock near MAX_CLOCK cannot drag this node's clock there, where its own next writes would be invalid.
 * Such an entry is still accepted and relayed (dropping it would make nodes with different wall clocks
 * disagree on what a table holds); it only outranks later writes to its own key until it is bleached.
 */
export const MAX_CLOCK_LEAD_MS = 1000 * 365.25 * 24 * 3600 * 1000

export class WriteClock {
  private last = 0
  constructor(private readonly now: () => number = Date.now) {}

  /**
   * A fresh clock value, greater than every value this clock issued and every observed one it took in,
   * and always valid on the wire (below MAX_CLOCK). Only a wall clock near year 287,000 could stall it.
   */
  tick(): string {
    this.last = Math.min(MAX_CLOCK - 1, Math.max(Math.floor(this.now()), this.last + 1))
    return String(this.last)
  }

  /**
   * Take a clock seen on a remote entry into account, up to MAX_CLOCK_LEAD_MS ahead of the wall clock:
   * one received entry cannot move this clock further (see MAX_CLOCK_LEAD_MS for why).
   */
  observe(clock: string | undefined): void {
    if (clock === undefined) return
    const ceiling = Math.min(MAX_CLOCK - 1 - 2 ** 40, Math.max(0, Math.floor(this.now())) + MAX_CLOCK_LEAD_MS)
    const n = Math.min(Number(clock), ceiling)
    if (n > this.last) this.last = n
  }
}

/** Orders two wire clock strings numerically (they carry no leading zeros, so length first). */
export function compareClocks(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length
  return a < b ? -1 : a > b ? 1 : 0
}
