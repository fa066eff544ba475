import type { Flavour, TypeName } from '../core/types.js'
import type { ChangeEvent, Replica } from './replica.js'

/** One recorded change, as the feed sends it. */
export interface LoggedChange {
  readonly cursor: string
  readonly flavour: Flavour
  readonly type: TypeName
  readonly origin: ChangeEvent['origin']
  /**
   * `{"cursor","flavour","type","origin","keys","entries"}` (entries: each changed key's entry right after the
   * change, `null` when the key is gone), serialised once: every feed client sends these same characters, and
   * the log holds text, not the entries, so what it keeps is counted in bytes.
   */
  readonly json: string
}

export type ReplayResult =
  | { readonly kind: 'replay'; readonly changes: readonly LoggedChange[] }
  /** The cursor is from another run of the node, or older than what is kept: start over from full tables. */
  | { readonly kind: 'reset'; readonly cursor: string }

export interface ChangeLogOptions {
  /** Identifies this run of the node in cursors; random when absent. */
  readonly epoch?: string
  /** Most changes kept (10,000 by default). */
  readonly maxChanges?: number
  /** Most characters of change text kept (1 MiB by default): a few large writes cannot hold memory. */
  readonly maxChars?: number
}

export const CHANGE_LOG_DEFAULTS = { maxChanges: 10_000, maxChars: 1024 * 1024 } as const

/**
 * The recent changes of a replica, each with a resume cursor, so a client that reconnects (a page, `malla
 * watch`) gets exactly what it missed. Cursors are `<epoch>.<seq>`: the epoch changes with every run of the
 * node, so a cursor from before a restart is never mistaken for a current one. What is kept is bounded in
 * count and in bytes; a cursor older than that asks the client to start again from full tables (`reset`).
 */
export class ChangeLog {
  readonly epoch: string
  private readonly changes: LoggedChange[] = []
  private chars = 0
  private seq = 0
  private readonly maxChanges: number
  private readonly maxChars: number
  private readonly listeners = new Set<(change: LoggedChange) => void>()
  private readonly offs: Array<() => void>

  constructor(replica: Replica, options: ChangeLogOptions = {}) {
    this.epoch = options.epoch ?? Math.random().toString(36).slice(2, 10)
    this.maxChanges = options.maxChanges ?? CHANGE_LOG_DEFAULTS.maxChanges
    this.maxChars = options.maxChars ?? CHANGE_LOG_DEFAULTS.maxChars
    this.offs = [
      // 'applied', not 'change': a page waiting for a signaling answer should not wait for our disk, any more
      // than our neighbours do (pushes leave on 'applied' too).
      replica.on('applied', (event) => this.record(event)),
      // A change announced but then not saved: its keys hold their stored entries again, and clients must
      // hear so, or the feed would hold an entry the table never kept.
      replica.on('reverted', (event) => this.record(event)),
    ]
  }

  /** The cursor of the latest change: "everything up to now". */
  get cursor(): string {
    return `${this.epoch}.${this.seq}`
  }

  /** How much the log holds now: changes and characters of their text. */
  size(): { changes: number; chars: number } {
    return { changes: this.changes.length, chars: this.chars }
  }

  close(): void {
    for (const off of this.offs) off()
    this.listeners.clear()
  }

  /** Changes after `cursor`, or a reset when they are not all kept. */
  since(cursor: string): ReplayResult {
    const [epoch, raw] = cursor.split('.')
    const seq = Number(raw)
    const oldest = this.seq - this.changes.length
    if (epoch !== this.epoch || !Number.isInteger(seq) || seq < oldest || seq > this.seq) return { kind: 'reset', cursor: this.cursor }
    return { kind: 'replay', changes: this.changes.slice(seq - oldest) }
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe function. */
  subscribe(listener: (change: LoggedChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private record(event: ChangeEvent): void {
    this.seq++
    const cursor = `${this.epoch}.${this.seq}`
    const entries: Record<string, object | null> = {}
    for (const key of event.keys) Object.defineProperty(entries, key, { value: event.table.get(key) ?? null, enumerable: true })
    const json = JSON.stringify({ cursor, flavour: event.flavour, type: event.type, origin: event.origin, keys: event.keys, entries })
    const change: LoggedChange = { cursor, flavour: event.flavour, type: event.type, origin: event.origin, json }
    this.changes.push(change)
    this.chars += json.length
    // The latest change is always kept, however large, so a client that read it can resume after it.
    while (this.changes.length > 1 && (this.changes.length > this.maxChanges || this.chars > this.maxChars)) {
      this.chars -= (this.changes.shift() as LoggedChange).json.length
    }
    for (const l of this.listeners) l(change)
  }
}
