import type { Unsubscribe } from 'nanoevents'
import type { Logger } from '../core/log.js'
import type { Entry } from '../core/types.js'
import type { ChangeEvent, Replica } from '../replica/replica.js'
import { refKey, type TableRef } from '../storage/table-store.js'
import { pushTo, reconcileWith, sendWhole, type Exchanged } from './initiator.js'
import { NotMallaError, type LinkTraffic, type SyncLink } from './links/link.js'
import type { SyncOutcome } from './full-table-sync.js'

/**
 * What a node sends over its links, and to whom:
 * - 'relay' (a router): every change goes to every link but the one it came from;
 * - 'leaf' (a page, a Node peer behind one router): only the entries this node wrote leave it, which keeps it
 *   from bringing back entries the routers have already aged out.
 */
export interface SyncPolicy {
  readonly role: 'relay' | 'leaf'
  /** Which tables travel on these links (every one by default). */
  readonly carries?: (ref: TableRef) => boolean
  /**
   * Tables repaired with every link even while this replica has none of them yet (a leaf that just joined
   * holds no table until something arrives: its repairs must still ask for these).
   */
  readonly tables?: Iterable<TableRef>
}

export interface SyncEngineOptions {
  readonly replica: Replica
  readonly policy: SyncPolicy
  readonly log: Logger
  /** Changes arriving within this delay go out together. */
  readonly debounceMs: number
  /**
   * 'malla' (default): push changes at once, reconcile with malla far ends. 'libremesh': behave as a LibreMesh
   * router does, whole-table sync on each `repairAll()` and nothing in between (the benchmarks' baseline).
   */
  readonly mode?: 'malla' | 'libremesh'
  /** Pause after a failed exchange with a link, doubled on each failure in a row up to `maxBackoffMs`. */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
  /** Called when what is known of a link changes (what it speaks, its name, an error, back to health). */
  readonly onLinkState?: (link: SyncLink) => void
}

/** What the engine knows of one link's health. */
export interface LinkHealth {
  readonly lastOkAt: number | undefined
  readonly lastError: string | undefined
}

interface Repair {
  readonly ref: TableRef
  readonly waiters: Array<(outcome: SyncOutcome) => void>
}

/** One link's own queue: a slow or dead far end waits here, and nowhere else. */
interface LinkQueue {
  readonly link: SyncLink
  /** Per table, the entries waiting to be pushed (a newer copy of a key replaces the older). */
  readonly pushes: Map<string, { ref: TableRef; entries: Map<string, object> }>
  /** Per table, a repair (reconciliation, or LibreMesh's whole-table sync) waiting, with whoever awaits it. */
  readonly repairs: Map<string, Repair>
  running: Promise<void> | undefined
  timer: ReturnType<typeof setTimeout> | undefined
  /** Exchanges that failed in a row: the pause before the next one grows with it. */
  failures: number
  lastOkAt: number | undefined
  lastError: string | undefined
  /** Cuts a backoff pause short (stop, removal). */
  wake: (() => void) | undefined
  closed: boolean
}

/**
 * One sync engine for every link. A change here goes out on each link through that link's queue: pushed at
 * once to a far end that speaks malla (coalesced while an exchange is in flight), as a repair to one that
 * does not or that just failed. `repairAll()` (called periodically by the owner) reconciles every table with
 * every link, so lost pushes and partitions heal. Links never wait for each other.
 */
export class SyncEngine {
  private readonly queues = new Map<SyncLink, LinkQueue>()
  private off: Unsubscribe | undefined
  private stopped = false
  private readonly mode: 'malla' | 'libremesh'
  /** Traffic of links removed since, so totals never go down. */
  private readonly gone = noTraffic()
  /** Traffic per table (bounded as the tables are: Replica's maxTables). */
  private readonly byTable = new Map<string, Totals>()
  private readonly createdAt = Date.now()

  constructor(private readonly options: SyncEngineOptions) {
    this.mode = options.mode ?? 'malla'
  }

  start(): void {
    if (this.mode === 'libremesh') return
    // 'applied', not 'change': a change leaves while it is still being saved here.
    this.off = this.options.replica.on('applied', (event) => this.changed(event))
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.off?.()
    for (const q of this.queues.values()) {
      clearTimeout(q.timer)
      q.wake?.()
    }
    await Promise.allSettled([...this.queues.values()].map((q) => q.running))
  }

  /**
   * Adds a link and (unless told not to, or the link says its far end starts) repairs every table with it at
   * once, so a far end that just appeared catches up.
   */
  add(link: SyncLink, catchUp = link.startsCatchUp ?? true): void {
    if (this.stopped || this.queues.has(link)) return
    const q: LinkQueue = { link, pushes: new Map(), repairs: new Map(), running: undefined, timer: undefined, failures: 0, lastOkAt: undefined, lastError: undefined, wake: undefined, closed: false }
    this.queues.set(link, q)
    if (catchUp && this.mode === 'malla') void this.tables().then((refs) => refs.forEach((ref) => void this.repair(q, ref)))
  }

  /**
   * Resolves once every link's queue is empty: what was queued has been sent. A link that keeps failing keeps its
   * repair queued (tried again after each pause), so against it this resolves only when the engine stops: a caller
   * bounds the wait (a leaf that leaves gives it STOP_GRACE_MS).
   */
  async flush(): Promise<void> {
    for (;;) {
      const busy = [...this.queues.values()].filter((q) => q.running !== undefined || q.pushes.size > 0 || q.repairs.size > 0)
      if (busy.length === 0 || this.stopped) return
      // A queue with work and no loop yet (a debounce, a backoff pause) gets its loop now.
      for (const q of busy) if (!q.running) this.kick(q, false)
      const running = busy.map((q) => q.running).filter((r) => r !== undefined)
      // Nothing could start (every such link closed meanwhile): nothing more will be sent.
      if (running.length === 0) return
      await Promise.allSettled(running)
    }
  }

  remove(link: SyncLink): void {
    const q = this.queues.get(link)
    if (q === undefined) return
    this.queues.delete(link)
    q.closed = true
    clearTimeout(q.timer)
    q.wake?.()
    const t = link.traffic
    addTraffic(this.gone, t)
    link.close()
  }

  /**
   * The far end of `link` just reached us (a request of its own): if this side does not know what it speaks,
   * or its last exchange failed, try it now instead of after the backoff, with a repair of the policy's
   * tables (small, and always there) so that what it speaks and its name are known before data flows.
   */
  heardFrom(link: SyncLink): void {
    const q = this.queues.get(link)
    if (!q || this.stopped || q.closed || this.mode !== 'malla') return
    if (link.speaks !== undefined && q.failures === 0) return
    q.wake?.()
    for (const ref of this.options.policy.tables ?? []) void this.repair(q, ref)
  }

  health(link: SyncLink): LinkHealth {
    const q = this.queues.get(link)
    return { lastOkAt: q?.lastOkAt, lastError: q?.lastError }
  }

  traffic(): LinkTraffic {
    const total = { ...this.gone }
    for (const link of this.queues.keys()) {
      const t = link.traffic
      addTraffic(total, t)
    }
    return total
  }

  /** What the exchanges of one table carried, over every link, so far. */
  tableTraffic(ref: TableRef): LinkTraffic {
    return { ...(this.byTable.get(refKey(ref)) ?? noTraffic()) }
  }

  /** Repairs one table with every link now; resolves with each link's outcome. */
  syncNow(ref: TableRef): Promise<SyncOutcome[]> {
    return Promise.all([...this.queues.values()].map((q) => this.repair(q, ref)))
  }

  /**
   * Brings every table in step with every link: the periodic repair of whatever pushes missed (lost messages,
   * partitions, restarts). Each link works through its own queue, so a dead one delays none of the others.
   */
  async repairAll(): Promise<void> {
    if (this.queues.size === 0) return
    const refs = await this.tables()
    await Promise.all([...this.queues.values()].flatMap((q) => refs.map((ref) => this.repair(q, ref))))
  }

  /** The tables to repair: those this replica holds that travel here, and the policy's own list. */
  private async tables(): Promise<TableRef[]> {
    const refs = new Map((await this.options.replica.list()).filter((r) => this.carries(r)).map((r) => [refKey(r), r]))
    for (const r of this.options.policy.tables ?? []) refs.set(refKey(r), r)
    return [...refs.values()]
  }

  private carries(ref: TableRef): boolean {
    return this.options.policy.carries?.(ref) ?? true
  }

  /** A change here: its entries join each link's queue, except where they came from. */
  private changed(event: ChangeEvent): void {
    if (this.stopped || this.queues.size === 0) return
    const ref: TableRef = { flavour: event.flavour, type: event.type }
    if (!this.carries(ref)) return
    const leaf = this.options.policy.role === 'leaf'
    const author = this.options.replica.author
    for (const q of this.queues.values()) {
      const entries = new Map<string, object>()
      const far = q.link.name
      for (const key of event.keys) {
        // Keys dropped by bleach have nothing to send: bleach is every node's own business.
        const entry = event.table.get(key)
        if (entry === undefined || event.sources?.get(key) === q.link.id) continue
        const writer = (entry as Entry).author
        if (leaf && writer !== author) continue
        // The far end wrote this copy: it holds it or a newer one. A copy that came here another way (through
        // the routers, or a third peer) would cost the link a whole exchange that changes nothing, and hold up
        // the pushes queued behind it. Repairs still carry it, for a far end that lost its tables.
        if (far !== undefined && writer === far) continue
        entries.set(key, entry)
      }
      if (entries.size === 0) continue
      // A far end that speaks LibreMesh only, or one that just failed, gets a repair: the whole table for the
      // one, and for the other everything a failed push would have carried. One not heard from yet gets the
      // push: its answer says what it speaks (a LibreMesh router merges the entries and answers its table).
      if (q.link.speaks === 'libremesh' || q.failures > 0) {
        void this.repair(q, ref)
        continue
      }
      const key = refKey(ref)
      const pending = q.pushes.get(key)
      if (pending) for (const [k, v] of entries) pending.entries.set(k, v)
      else q.pushes.set(key, { ref, entries })
      this.kick(q, true)
    }
  }

  /** Queues a repair of `ref` with one link (one per table at a time); resolves when it has run. */
  private repair(q: LinkQueue, ref: TableRef): Promise<SyncOutcome> {
    return new Promise((resolve) => {
      if (this.stopped || q.closed) return resolve(this.outcome(q, { keys: [], skipped: 'sync stopped' }, undefined))
      const key = refKey(ref)
      const pending = q.repairs.get(key)
      if (pending) pending.waiters.push(resolve)
      else q.repairs.set(key, { ref, waiters: [resolve] })
      this.kick(q, false)
    })
  }

  /** Starts the link's loop unless it runs; pushes wait `debounceMs` first, so a burst leaves together. */
  private kick(q: LinkQueue, debounce: boolean): void {
    if (q.running || this.stopped || q.closed) return
    if (debounce && this.options.debounceMs > 0) {
      q.timer ??= setTimeout(() => {
        q.timer = undefined
        this.kick(q, false)
      }, this.options.debounceMs)
      return
    }
    clearTimeout(q.timer)
    q.timer = undefined
    q.running = this.drain(q).finally(() => {
      q.running = undefined
      // Work queued after the loop's last look at the queue.
      if ((q.pushes.size > 0 || q.repairs.size > 0) && !this.stopped && !q.closed) this.kick(q, false)
    })
  }

  /** One link's loop: pushes first (someone may be waiting for them), then repairs, one exchange at a time. */
  private async drain(q: LinkQueue): Promise<void> {
    while (!this.stopped && !q.closed) {
      if (q.failures > 0) await this.pause(q)
      if (this.stopped || q.closed) break
      const push = first(q.pushes)
      if (push) {
        q.pushes.delete(refKey(push.ref))
        if (q.link.speaks !== 'libremesh' && q.failures === 0) {
          await this.exchange(q, push.ref, 'push', push.entries)
          // A first answer from a LibreMesh router: it has the pushed entries, and gets the rest as it expects.
          if (learnt(q.link) === 'libremesh') void this.repair(q, push.ref)
        } else void this.repair(q, push.ref)
        continue
      }
      const repair = first(q.repairs)
      if (!repair) break
      q.repairs.delete(refKey(repair.ref))
      const outcome = await this.exchange(q, repair.ref, 'repair', undefined)
      for (const resolve of repair.waiters) resolve(outcome)
    }
    // Whoever still waits on a link that stopped hears so.
    if (this.stopped || q.closed) {
      for (const r of q.repairs.values()) for (const resolve of r.waiters) resolve(this.outcome(q, { keys: [], skipped: 'sync stopped' }, undefined))
      q.repairs.clear()
      q.pushes.clear()
    }
  }

  private pause(q: LinkQueue): Promise<void> {
    const min = this.options.minBackoffMs ?? 250
    const ms = Math.min(this.options.maxBackoffMs ?? 5000, min * 2 ** Math.min(q.failures - 1, 16))
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        q.wake = undefined
        resolve()
      }
      q.wake = done
    })
  }

  /**
   * One exchange with one link: a push of `entries`, or a repair (reconciliation with a far end that may speak
   * malla; LibreMesh's whole-table sync with one that does not, or in LibreMesh mode).
   */
  private async exchange(q: LinkQueue, ref: TableRef, what: 'push' | 'repair', entries: ReadonlyMap<string, object> | undefined): Promise<SyncOutcome> {
    const { log, replica } = this.options
    const link = q.link
    const before = link.traffic
    const speaksBefore = link.speaks
    let how: 'push' | 'reconcile' | 'sync' = what === 'push' ? 'push' : this.mode === 'malla' && link.speaks !== 'libremesh' ? 'reconcile' : 'sync'
    let result: Exchanged
    try {
      if (how === 'push') result = await pushTo(replica, link, ref, entries as ReadonlyMap<string, object>)
      else if (how === 'reconcile') {
        try {
          result = await reconcileWith(replica, link, ref, this.options.policy.role === 'leaf' ? (e) => (e as Entry).author === replica.author : undefined)
        } catch (e) {
          if (!(e instanceof NotMallaError)) throw e
          // A LibreMesh router: it gets what LibreMesh routers get, the whole table.
          how = 'sync'
          result = await sendWhole(replica, link, ref, this.leafEntries((await replica.read(ref)).table))
        }
      } else result = await sendWhole(replica, link, ref, this.leafEntries((await replica.read(ref)).table))
    } catch (e) {
      const error = (e as Error).message
      // Routers come up together (a lab, the power back after a cut): a neighbour not answering yet in the first
      // seconds is routine, not worth a warning. One that never answers, or stops answering, is.
      const startingUp = q.lastOkAt === undefined && Date.now() - this.createdAt < STARTUP_GRACE_MS
      log[startingUp ? 'debug' : 'warn'](`${how} failed`, { type: ref.type, url: link.label, error })
      const changed = q.lastError === undefined
      q.lastError = error
      q.failures++
      // What a failed push carried is covered by a repair, and a failed repair is tried again: after the link's
      // pause, which grows while failures go on (a dead neighbour costs one request every maxBackoffMs).
      q.repairs.has(refKey(ref)) || q.repairs.set(refKey(ref), { ref, waiters: [] })
      if (changed) this.options.onLinkState?.(link)
      return this.outcome(q, { keys: [], skipped: error }, before)
    }
    if (result.skipped) log.warn('sync answer unusable', { type: ref.type, url: link.label, reason: result.skipped })
    const outcome = this.outcome(q, result, before)
    const perTable = this.byTable.get(refKey(ref)) ?? noTraffic()
    addTraffic(perTable, { exchanges: 1, bytesSent: outcome.bytesSent, bytesReceived: outcome.bytesReceived })
    this.byTable.set(refKey(ref), perTable)
    if (!result.skipped) log.debug({ push: 'pushed', reconcile: 'reconciled', sync: 'synced' }[how], { type: ref.type, url: link.label, changed: result.keys.length, sent: outcome.bytesSent, received: outcome.bytesReceived })
    if (link.speaks !== speaksBefore && link.speaks !== undefined) log.info(link.speaks === 'malla' ? 'neighbour speaks malla' : 'neighbour speaks LibreMesh only', { peer: link.label })
    const changed = q.lastError !== undefined || link.speaks !== speaksBefore
    q.failures = 0
    q.lastError = undefined
    q.lastOkAt = Date.now()
    if (changed) this.options.onLinkState?.(link)
    return outcome
  }

  /** What a whole-table sync sends: all of it from a relay, this node's own entries from a leaf. */
  private leafEntries(table: ReadonlyMap<string, object>): ReadonlyMap<string, object> {
    if (this.options.policy.role === 'relay') return table
    const author = this.options.replica.author
    return new Map([...table].filter(([, e]) => (e as Entry).author === author))
  }

  private outcome(q: LinkQueue, result: Exchanged, before: LinkTraffic | undefined): SyncOutcome {
    const after = q.link.traffic
    return {
      url: q.link.label,
      keys: result.keys,
      ...(result.skipped !== undefined ? { skipped: result.skipped } : {}),
      bytesSent: before ? after.bytesSent - before.bytesSent : 0,
      bytesReceived: before ? after.bytesReceived - before.bytesReceived : 0,
      malla: q.link.speaks === 'malla',
      ...(q.link.name ? { name: q.link.name } : {}),
    }
  }
}

/** How long after start a neighbour that never answered may fail without a warning. */
const STARTUP_GRACE_MS = 15_000

/** What a link says its far end speaks now (after an exchange, which may have taught it). */
function learnt(link: SyncLink): SyncLink['speaks'] {
  return link.speaks
}

type Totals = { -readonly [K in keyof LinkTraffic]: LinkTraffic[K] }

const noTraffic = (): Totals => ({ exchanges: 0, bytesSent: 0, bytesReceived: 0 })

function addTraffic(into: Totals, t: LinkTraffic): void {
  into.exchanges += t.exchanges
  into.bytesSent += t.bytesSent
  into.bytesReceived += t.bytesReceived
}

function first<V>(map: Map<string, V>): V | undefined {
  for (const v of map.values()) return v
  return undefined
}
