import type { Flavour, TypeName } from '../core/types.js'
import type { ChangeEvent, Replica } from './replica.js'

/** One recorded change: the changed keys with their entries right after it (`null`: the key is gone). */
export interface LoggedChange {
  readonly cursor: string
  readonly flavour: Flavour
  readonly type: TypeName
  readonly origin: ChangeEvent['origin']
  readonly entries: Readonly<Record<string, object | null>>
}

export type ReplayResult =
  | { readonly kind: 'replay'; readonly changes: readonly LoggedChange[] }
  /** The cursor is from another run of the node, or older than what is kept: start over from full tables. */
  | { readonly kind: 'reset'; readonly cursor: string }

/**
 * The recent changes of a replica, each with a resume cursor, so a client that reconnects (a page, `malla
 * watch`) gets exactly what it missed. Cursors are `<epoch>.<seq>`: the epoch changes with every run of the
 * node, so a cursor from before a restart is never mistaken for a current one; a cursor too old for the
 * kept window also asks the client to start again from full tables.
 */
export class ChangeLog {
  private readonly changes: LoggedChange[] = []
  private seq = 0
  private readonly listeners = new Set<(change: LoggedChange) => void>()
  private readonly off: () => void

  constructor(
    replica: Replica,
    readonly epoch: string = Math.random().toString(36).slice(2, 10),
    private readonly capacity = 10_000,
  ) {
    // 'applied', not 'change': a page waiting for a signaling answer should not wait for our disk, any more
    // than our neighbours do (pushes leave on 'applied' too). A save that then fails is not taken back:
    // whoever saw the entries holds a valid CRDT state, as our neighbours do.
    this.off = replica.on('applied', (event) => this.record(event))
  }

  /** The cursor of the latest change: "everything up to now". */
  get cursor(): string {
    return `${this.epoch}.${this.seq}`
  }

  close(): void {
    this.off()
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
    const entries: Record<string, object | null> = {}
    for (const key of event.keys) Object.defineProperty(entries, key, { value: event.table.get(key) ?? null, enumerable: true })
    this.seq++
    const change: LoggedChange = { cursor: `${this.epoch}.${this.seq}`, flavour: event.flavour, type: event.type, origin: event.origin, entries }
    this.changes.push(change)
    if (this.changes.length > this.capacity) this.changes.splice(0, this.changes.length - this.capacity)
    for (const l of this.listeners) l(change)
  }
}
