import type { WritableTable } from '../core/types.js'

const GONE = Symbol('deleted')

/**
 * A table being changed by one commit, over the committed table it starts from, which it never mutates.
 *
 * Copying a 10,000-entry Map costs about 1 ms; a commit that changes a few keys should not pay it before
 * the change can leave for the neighbours. So operations write into this overlay, the `applied` event
 * hands it out as it is, and the replica builds the plain Map it keeps (`materialize`) only afterwards.
 * Once the commit stops writing to it, a draft is as immutable as the Map it was built over.
 */
export class DraftTable<E> implements WritableTable<E> {
  private readonly own = new Map<string, E | typeof GONE>()
  /** Committed keys deleted and then written again: a Map would now list them after the others. */
  private readonly moved = new Set<string>()
  private liveSize: number
  private committed: ReadonlyMap<string, E>
  private replaced = false

  constructor(base: ReadonlyMap<string, E>) {
    this.committed = base
    this.liveSize = base.size
  }

  /** The table this draft is over. */
  get base(): ReadonlyMap<string, E> {
    return this.committed
  }

  /**
   * Makes `table` what this draft holds, dropping the changes written so far (which `table` must already
   * hold): for an operation that builds the whole new table at once, such as a bleach of a packed table.
   */
  rebase(table: ReadonlyMap<string, E>): void {
    this.committed = table
    this.own.clear()
    this.moved.clear()
    this.liveSize = table.size
    this.replaced = true
  }

  /** Whether this draft holds exactly the table it was made over. */
  get unchanged(): boolean {
    return this.own.size === 0 && !this.replaced
  }

  /** The keys this draft wrote (with their entries) or deleted (undefined), in the order they were first changed. */
  changes(): Map<string, E | undefined> {
    const out = new Map<string, E | undefined>()
    for (const [key, value] of this.own) out.set(key, value === GONE ? undefined : value)
    return out
  }

  /** Committed keys deleted and written again: a Map lists them after the others. */
  get movedKeys(): ReadonlySet<string> {
    return this.moved
  }

  /**
   * A new draft over `table`. When `table` is itself a committed draft, the new one shares its base and copies
   * only its changes: a commit that changes a few keys of a 100,000-entry table then costs those keys (plus
   * the changes not yet folded), not a copy of the whole table. `table` is left as it is.
   */
  static over<E>(table: ReadonlyMap<string, E>): DraftTable<E> {
    if (!(table instanceof DraftTable)) return new DraftTable(table)
    const from = table as DraftTable<E>
    const draft = new DraftTable(from.committed)
    for (const [key, value] of from.own) draft.own.set(key, value)
    for (const key of from.moved) draft.moved.add(key)
    draft.liveSize = from.liveSize
    return draft
  }

  /**
   * Whether this draft's changes are worth folding into a plain Map now. Each later commit copies the changes
   * held here, and folding copies the whole base: past about √(2·size) changes folding costs less overall
   * (amortised, a commit of k keys then costs O(k + √size) instead of O(size)). A table under 4,096 entries is
   * always folded: copying it costs less than a millisecond, and it stays a plain Map for everyone who reads it.
   */
  get shouldFold(): boolean {
    return this.replaced || this.committed.size < 4096 || this.own.size > Math.sqrt(2 * this.committed.size)
  }

  get size(): number {
    return this.liveSize
  }

  get(key: string): E | undefined {
    const mine = this.own.get(key)
    if (mine === GONE) return undefined
    return mine !== undefined ? mine : this.committed.get(key)
  }

  has(key: string): boolean {
    const mine = this.own.get(key)
    return mine === GONE ? false : mine !== undefined || this.committed.has(key)
  }

  set(key: string, value: E): this {
    if (!this.has(key)) {
      this.liveSize++
      // Re-adding a deleted committed key puts it last, where a Map would.
      if (this.own.get(key) === GONE) {
        this.own.delete(key)
        this.moved.add(key)
      }
    }
    this.own.set(key, value)
    return this
  }

  delete(key: string): boolean {
    if (!this.has(key)) return false
    this.liveSize--
    if (this.committed.has(key)) {
      this.own.set(key, GONE)
      this.moved.delete(key)
    } else {
      this.own.delete(key)
    }
    return true
  }

  /** Keys this draft wrote or deleted (a key it added and deleted again is not counted). */
  get changedCount(): number {
    return this.own.size
  }

  /** The committed form: a plain Map in the base's key order, new keys after (as a copied Map would be). */
  materialize(): Map<string, E> {
    const out = new Map(this.committed)
    for (const [key, value] of this.own) {
      if (value === GONE || this.moved.has(key)) out.delete(key)
      if (value !== GONE) out.set(key, value)
    }
    return out
  }

  *entries(): MapIterator<[string, E]> {
    for (const [key, value] of this.committed) {
      const mine = this.own.get(key)
      if (mine === GONE || this.moved.has(key)) continue
      yield [key, mine !== undefined ? mine : value]
    }
    for (const [key, value] of this.own) if (value !== GONE && (this.moved.has(key) || !this.committed.has(key))) yield [key, value]
  }

  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key
  }

  *values(): MapIterator<E> {
    for (const [, value] of this.entries()) yield value
  }

  [Symbol.iterator](): MapIterator<[string, E]> {
    return this.entries()
  }

  forEach(callback: (value: E, key: string, map: ReadonlyMap<string, E>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this)
  }
}
