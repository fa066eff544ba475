import type { Logger } from '../core/log.js'
import type { Replica } from '../replica/replica.js'
import type { TableRef } from '../storage/table-store.js'
import type { HttpPoster } from '../transport/http-poster.js'
import { SyncEngine } from './engine.js'
import { failedOutcome, syncTable, type SyncOutcome } from './full-table-sync.js'
import type { LinkTraffic } from './links/link.js'
import { HttpLink } from './links/http-link.js'
import { baseAddress, normalizeAddress } from '../transport/address.js'

export interface NeighbourSyncOptions {
  readonly replica: Replica
  readonly poster: HttpPoster
  /** Neighbours' base URLs (`http://10.13.0.1`, `http://[fe80::1%25br-lan]:8080`). */
  readonly peers: readonly string[]
  readonly timeoutMs: number
  /** Changes arriving within this delay go out together. */
  readonly debounceMs: number
  readonly log: Logger
  /** This node's name, sent with its requests so a neighbour never sends a change back to where it came from. */
  readonly name?: string
  /**
   * 'malla' (default): push changes at once, reconcile by digests with malla neighbours.
   * 'libremesh': behave as a LibreMesh router does, full-table sync with every neighbour on each
   * `antiEntropy()` round and nothing in between (the baseline benchmarks compare against).
   */
  readonly mode?: 'malla' | 'libremesh'
  /** Called when what is known of the neighbours changes (one added or removed, a name learnt, an error). */
  readonly onNeighbours?: () => void
  /**
   * Tables repaired with every neighbour even while this node holds none of them: with one that is always
   * there (a router's `malla-links`), a neighbour's first exchange, at start or when it is found, tells what it
   * speaks and its name before any data flows, so the first change already crosses each link once.
   */
  readonly tables?: Iterable<TableRef>
}

/** Bytes this node's own exchanges carried, both directions, since it started. */
export type Traffic = LinkTraffic

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

/**
 * A router's neighbours, as links of the sync engine with the relay policy: each neighbour (a base URL,
 * configured or discovered) is an HTTP link with its own queue. See SyncEngine for what goes where.
 */
export class NeighbourSync {
  private readonly engine: SyncEngine
  /** By base URL; `address` is the base's host, normalised, as requests from that neighbour show it. */
  private readonly neighbours = new Map<string, { link: HttpLink; source: 'static' | 'discovered'; address: string | undefined }>()

  constructor(private readonly options: NeighbourSyncOptions) {
    this.engine = new SyncEngine({
      replica: options.replica,
      policy: { role: 'relay', ...(options.tables ? { tables: options.tables } : {}) },
      log: options.log,
      debounceMs: options.debounceMs,
      mode: options.mode ?? 'malla',
      onLinkState: () => options.onNeighbours?.(),
    })
    // Configured neighbours are repaired by the owner's first round, once it is listening.
    for (const base of options.peers) this.add(base, 'static', false)
  }

  traffic(): Traffic {
    return this.engine.traffic()
  }

  /**
   * Adds a neighbour found at run time (discovery) and syncs every table with it at once, so a node that
   * joins catches up without waiting for the next anti-entropy round. Adding a known base does nothing.
   */
  addNeighbour(base: string, source: 'static' | 'discovered' = 'discovered'): void {
    if (this.neighbours.has(base)) return
    this.add(base, source)
    this.options.log.info('neighbour added', { peer: base, source })
    this.options.onNeighbours?.()
  }

  /** Forgets a neighbour (one discovery no longer sees); static peers stay. */
  removeNeighbour(base: string): void {
    const n = this.neighbours.get(base)
    if (n === undefined || n.source !== 'discovered') return
    this.neighbours.delete(base)
    this.engine.remove(n.link)
    this.options.log.info('neighbour removed', { peer: base })
    this.options.onNeighbours?.()
  }

  start(): void {
    this.engine.start()
  }

  stop(): Promise<void> {
    return this.engine.stop()
  }

  info(): NeighbourInfo[] {
    return [...this.neighbours].map(([base, { link, source }]) => {
      const health = this.engine.health(link)
      return { base, source, malla: link.speaks === undefined ? undefined : link.speaks === 'malla', name: link.name, lastOkAt: health.lastOkAt, lastError: health.lastError }
    })
  }

  /**
   * Syncs one table now: LibreMesh's full-table sync with each of the given endpoint URLs, or, with none
   * given, a repair with every neighbour (reconciliation with malla neighbours, a full-table sync with others).
   */
  async syncNow(ref: TableRef, urls?: readonly string[]): Promise<SyncOutcome[]> {
    if (urls === undefined) return this.engine.syncNow(ref)
    const { replica, poster, timeoutMs, log } = this.options
    return Promise.all(
      urls.map(async (url) => {
        try {
          return await syncTable(replica, ref, url, { poster, timeoutMs })
        } catch (e) {
          log.warn('sync failed', { type: ref.type, url, error: (e as Error).message })
          return failedOutcome(url, e)
        }
      }),
    )
  }

  /**
   * A malla node at `address` called `name` just sent us a sync request: the neighbour behind it is there.
   * Its link, if this side does not know it yet or last failed with it, is tried now (SyncEngine.heardFrom).
   */
  heard(address: string, name: string): void {
    const from = normalizeAddress(address)
    const links = [...this.neighbours.values()].filter((n) => n.address === from).map((n) => n.link)
    // The link known by that name; else those at that address whose far end has not said its name yet (several
    // neighbours may share an address, as on loopback: a request from one must not wake the others).
    const named = links.filter((l) => l.name === name)
    for (const link of named.length > 0 ? named : links.filter((l) => l.name === undefined)) this.engine.heardFrom(link)
  }

  /** Brings every table in step with every neighbour: the periodic repair of whatever pushes missed. */
  antiEntropy(): Promise<void> {
    return this.engine.repairAll()
  }

  private add(base: string, source: 'static' | 'discovered', catchUp = true): void {
    const { poster, timeoutMs, name } = this.options
    const link = new HttpLink({ base, poster, timeoutMs, ...(name ? { ownName: name } : {}) })
    this.neighbours.set(base, { link, source, address: baseAddress(base) })
    this.engine.add(link, catchUp)
  }
}
