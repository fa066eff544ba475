import type { Logger } from '../core/log.js'
import type { Replica } from '../replica/replica.js'
import { refKey, type TableRef } from '../storage/table-store.js'
import type { HttpPoster } from '../transport/http-poster.js'
import { endpointUrl } from './links/http-wire.js'
import { failedOutcome, pushEntries, syncTable, type SyncOutcome } from './full-table-sync.js'
import { NotMallaError, reconcileTable } from './reconcile-client.js'

export interface NeighbourSyncOptions {
  readonly replica: Replica
  readonly poster: HttpPoster
  /** Neighbours' base URLs (`http://10.13.0.1`, `http://[fe80::1%25br-lan]:8080`). */
  readonly peers: readonly string[]
  readonly timeoutMs: number
  /** Changes arriving within this delay go out together. */
  readonly debounceMs: number
  readonly log: Logger
  /**
   * 'malla' (default): push changes at once, reconcile by digests with malla neighbours.
   * 'libremesh': behave as a LibreMesh router does, full-table sync with every neighbour on each
   * `antiEntropy()` round and nothing in between (the baseline benchmarks compare against).
   */
  readonly mode?: 'malla' | 'libremesh'
  /** Called when what is known of the neighbours changes (one added or removed, a name learnt, an error). */
  readonly onNeighbours?: () => void
}

/** Bytes this node's own exchanges carried, both directions, since it started. */
export interface Traffic {
  readonly exchanges: number
  readonly bytesSent: number
  readonly bytesReceived: number
}

/** What this node knows of one neighbour. */
export interface NeighbourInfo {
  readonly base: string
  /** 'static' for `--peer`, 'discovered' for neighbours found on a link (ff02::1). */
  readonly source: 'static' | 'discovered'
  /** Whether it answered with malla's capability header; undefined until it answered at all. */
  readonly malla: boolean | undefined
  /** Its `--name`, once a malla answer said it. */
  readonly name: string | undefined
  readonly lastOkAt: number | undefined
  readonly lastError: string | undefined
}

interface Neighbour {
  base: string
  source: 'static' | 'discovered'
  malla: boolean | undefined
  name: string | undefined
  lastOkAt: number | undefined
  lastError: string | undefined
}

interface TableRound {
  dirty: Set<string>
  /** The table as of the latest change: the entries to send are read from it, not from the (busy) replica. */
  table: ReadonlyMap<string, object>
  timer: ReturnType<typeof setTimeout> | undefined
  running: Promise<void> | undefined
  again: boolean
}

/**
 * Keeps a node's tables in step with its neighbours:
 * - after a substantial change, the changed entries go to every neighbour within `debounceMs`: as a delta
 *   push to malla neighbours (only those entries; they forward what was new to them, and stop where
 *   nothing is), as LibreMesh's full-table POST to the others;
 * - `antiEntropy()` (called periodically by the owner) syncs whole tables with everyone, so lost pushes
 *   and partitions heal.
 * Rounds of one table never overlap: changes during a round are sent by exactly one more round.
 */
export class NeighbourSync {
  private readonly neighbours: Neighbour[]
  private readonly rounds = new Map<string, TableRound>()
  private readonly refs = new Map<string, TableRef>()
  private off: (() => void) | undefined
  private stopped = false
  private readonly totals = { exchanges: 0, bytesSent: 0, bytesReceived: 0 }
  private readonly mode: 'malla' | 'libremesh'

  constructor(private readonly options: NeighbourSyncOptions) {
    this.neighbours = options.peers.map((base) => ({ base, source: 'static' as const, malla: undefined, name: undefined, lastOkAt: undefined, lastError: undefined }))
    this.mode = options.mode ?? 'malla'
  }

  traffic(): Traffic {
    return { ...this.totals }
  }

  /**
   * Adds a neighbour found at run time (discovery) and syncs every table with it at once, so a node that
   * joins catches up without waiting for the next anti-entropy round. Adding a known base does nothing.
   */
  addNeighbour(base: string, source: 'static' | 'discovered' = 'discovered'): void {
    if (this.stopped || this.neighbours.some((n) => n.base === base)) return
    const n: Neighbour = { base, source, malla: undefined, name: undefined, lastOkAt: undefined, lastError: undefined }
    this.neighbours.push(n)
    this.options.log.info('neighbour added', { peer: base, source })
    this.options.onNeighbours?.()
    void this.options.replica.list().then((refs) => Promise.all(refs.map((ref) => this.repair(ref, n))))
  }

  /** Forgets a neighbour (one discovery no longer sees); static peers stay. */
  removeNeighbour(base: string): void {
    const i = this.neighbours.findIndex((n) => n.base === base && n.source === 'discovered')
    if (i < 0) return
    this.neighbours.splice(i, 1)
    this.options.log.info('neighbour removed', { peer: base })
    this.options.onNeighbours?.()
  }

  start(): void {
    if (this.mode === 'libremesh') return
    // 'applied', not 'change': a change leaves for the neighbours while it is still being saved here.
    this.off = this.options.replica.on('applied', (event) => {
      this.markDirty({ flavour: event.flavour, type: event.type }, event.keys, event.table)
    })
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.off?.()
    for (const r of this.rounds.values()) clearTimeout(r.timer)
    await Promise.allSettled([...this.rounds.values()].map((r) => r.running))
  }

  info(): NeighbourInfo[] {
    return this.neighbours.map((n) => ({ ...n }))
  }

  /**
   * Syncs one table now: LibreMesh's full-table sync with each of the given endpoint URLs, or, with none
   * given, a repair with every neighbour (reconciliation with malla neighbours, a full-table sync with others).
   */
  async syncNow(ref: TableRef, urls?: readonly string[]): Promise<SyncOutcome[]> {
    if (urls !== undefined) return Promise.all(urls.map((url) => this.exchange(ref, url, undefined, undefined)))
    return Promise.all(this.neighbours.map((n) => this.repair(ref, n)))
  }

  /**
   * Brings every table in step with every neighbour: the periodic repair of whatever pushes missed (lost
   * messages, partitions, restarts). malla neighbours reconcile by digests and exchange only what differs;
   * the others get LibreMesh's full-table sync.
   */
  async antiEntropy(): Promise<void> {
    if (this.neighbours.length === 0) return
    for (const ref of await this.options.replica.list()) {
      await Promise.all(this.neighbours.map((n) => this.repair(ref, n)))
    }
  }

  /**
   * Brings one table in step with one neighbour. A neighbour that may speak malla (it did, or nothing is
   * known yet) is reconciled, in pages, so that no body ever holds a whole table: a node that joins late gets
   * a large table with the default body limit. One that answers without malla's header gets LibreMesh's
   * full-table sync, now and until an exchange with it fails.
   */
  private repair(ref: TableRef, n: Neighbour): Promise<SyncOutcome> {
    if (this.mode === 'malla' && n.malla !== false) return this.exchange(ref, `${n.base.replace(/\/+$/, '')}/malla/v1/reconcile`, n, 'reconcile')
    return this.exchange(ref, endpointUrl(n.base, ref), n, undefined)
  }

  private markDirty(ref: TableRef, keys: readonly string[], table: ReadonlyMap<string, object>): void {
    if (this.stopped || this.neighbours.length === 0) return
    const key = refKey(ref)
    this.refs.set(key, ref)
    let round = this.rounds.get(key)
    if (round === undefined) {
      round = { dirty: new Set(), table, timer: undefined, running: undefined, again: false }
      this.rounds.set(key, round)
    }
    for (const k of keys) round.dirty.add(k)
    round.table = table
    this.schedule(ref, round)
  }

  /**
   * Starts a round now (no debounce) or after `debounceMs`. Either way changes that arrive while a round is
   * in flight wait for it and leave together in the next one, so a burst costs a few rounds, not one each.
   */
  private schedule(ref: TableRef, round: TableRound): void {
    if (round.running) {
      round.again = true
      return
    }
    if (round.timer !== undefined || this.stopped) return
    const run = () => {
      round.timer = undefined
      const keys = round.dirty
      round.dirty = new Set()
      round.running = this.sendChanges(ref, keys, round.table).finally(() => {
        round.running = undefined
        if (round.again) {
          round.again = false
          if (round.dirty.size > 0) this.schedule(ref, round)
        }
      })
    }
    if (this.options.debounceMs <= 0) run()
    else round.timer = setTimeout(run, this.options.debounceMs)
  }

  private async sendChanges(ref: TableRef, keys: ReadonlySet<string>, table: ReadonlyMap<string, object>): Promise<void> {
    const entries = new Map<string, object>()
    // Keys dropped by bleach have nothing to send: bleach is every node's own business.
    for (const k of keys) {
      const entry = table.get(k)
      if (entry !== undefined) entries.set(k, entry)
    }
    if (entries.size === 0) return
    // A neighbour not heard from yet is reconciled rather than sent this whole table: that also tells what it speaks.
    await Promise.all(this.neighbours.map((n) => (n.malla === true ? this.exchange(ref, endpointUrl(n.base, ref), n, entries) : this.repair(ref, n))))
  }

  /**
   * One exchange with a neighbour: a push of `entries` when given, a reconciliation by digests when asked
   * (both for malla neighbours only), else LibreMesh's full-table sync.
   */
  private async exchange(
    ref: TableRef,
    url: string,
    n: Neighbour | undefined,
    what: ReadonlyMap<string, object> | 'reconcile' | undefined,
  ): Promise<SyncOutcome> {
    const { log, replica, poster, timeoutMs } = this.options
    const how = what === undefined ? 'sync' : what === 'reconcile' ? 'reconcile' : 'push'
    let outcome: SyncOutcome
    try {
      outcome =
        what === 'reconcile' && n
          ? await reconcileTable(replica, ref, n.base, { poster, timeoutMs })
          : what instanceof Map
            ? await pushEntries(replica, ref, url, what, { poster, timeoutMs })
            : await syncTable(replica, ref, url, { poster, timeoutMs })
    } catch (e) {
      if (e instanceof NotMallaError && n) {
        // A LibreMesh router: it gets what LibreMesh routers get, the whole table.
        if (n.malla !== false) log.info('neighbour speaks LibreMesh only', { peer: n.base })
        n.malla = false
        return this.exchange(ref, endpointUrl(n.base, ref), n, undefined)
      }
      outcome = failedOutcome(url, e)
      log.warn(`${how} failed`, { type: ref.type, url, error: outcome.skipped })
      if (n) {
        const changed = n.lastError === undefined
        n.lastError = outcome.skipped
        // Whatever it missed is repaired by a full sync once it answers again, which also re-learns what it speaks.
        n.malla = undefined
        if (changed) this.options.onNeighbours?.()
      }
      return outcome
    }
    this.totals.exchanges++
    this.totals.bytesSent += outcome.bytesSent
    this.totals.bytesReceived += outcome.bytesReceived
    if (outcome.skipped) log.warn('sync answer unusable', { type: ref.type, url, reason: outcome.skipped })
    else log.debug({ push: 'pushed', reconcile: 'reconciled', sync: 'synced' }[how], { type: ref.type, url, changed: outcome.keys.length, sent: outcome.bytesSent, received: outcome.bytesReceived })
    if (n) {
      if (n.malla !== outcome.malla) log.info(outcome.malla ? 'neighbour speaks malla' : 'neighbour speaks LibreMesh only', { peer: n.base })
      const changed = n.lastError !== undefined || n.malla !== outcome.malla || (outcome.name !== undefined && n.name !== outcome.name)
      n.lastOkAt = Date.now()
      n.lastError = undefined
      n.malla = outcome.malla
      if (outcome.name) n.name = outcome.name
      if (changed) this.options.onNeighbours?.()
    }
    return outcome
  }
}
