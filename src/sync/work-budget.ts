import { MallaError } from '../core/errors.js'

/**
 * How much work each neighbour may ask of this node: a token bucket per neighbour (by address), refilled
 * at `perSecond` up to `capacity`. Reconciling costs one unit per entry hashed, compared or sent; bad input
 * costs a fixed penalty, so a neighbour that sends garbage or oversized summaries is soon refused (BUSY)
 * and cannot make this node do unbounded work.
 */
export class WorkBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    readonly capacity = 2_000_000,
    readonly perSecond = 200_000,
    private readonly now: () => number = Date.now,
    /** What the units are, for the error a refused caller gets. */
    private readonly unit = 'units',
  ) {}

  /** Takes `units` from `who`'s budget, or throws BUSY without taking anything when it has too few. */
  charge(who: string, units: number): void {
    const b = this.refill(who)
    if (b.tokens < units) {
      throw new MallaError('BUSY', `${who} asked for more than its budget allows (${Math.floor(b.tokens)} of ${units} ${this.unit} left); retry later`)
    }
    b.tokens -= units
  }

  /** Takes what is left of `units` even past zero (a penalty for bad input). */
  penalize(who: string, units: number): void {
    this.refill(who).tokens -= units
  }

  private refill(who: string): { tokens: number; at: number } {
    const now = this.now()
    let b = this.buckets.get(who)
    if (b === undefined) {
      if (this.buckets.size > 10_000) this.buckets.clear() // many one-off addresses: forget them all rather than grow
      b = { tokens: this.capacity, at: now }
      this.buckets.set(who, b)
    }
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) / 1000) * this.perSecond)
    b.at = now
    return b
  }
}
