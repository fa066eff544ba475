import { watch, type FSWatcher } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Logger } from '../../core/log.js'
import { isTypeName } from '../../core/schema.js'
import type { Flavour, TypeName } from '../../core/types.js'
import { ChangeLog } from '../../replica/change-log.js'
import { Replica } from '../../replica/replica.js'
import { refKey, type TableRef } from '../../storage/table-store.js'
import type { SyncOutcome } from '../../sync/full-table-sync.js'
import { NeighbourSync, type NeighbourInfo } from '../../sync/neighbour-sync.js'
import { WorkBudget } from '../../sync/work-budget.js'
import { FileStore } from '../storage/file-store.js'
import { nodeHttpPoster } from '../transport/node-http-poster.js'
import { NeighbourDiscovery } from '../discovery/neighbour-discovery.js'
import { loadBrowserBundle, type BrowserBundle } from './browser-bundle.js'
import { HookRunner } from './hook-runner.js'
import { LINKS_TYPE, linksData } from '../../signaling/router-links.js'
import { handleRequest } from './http-routes.js'
import { PushSockets } from './push-socket.js'
import { StunResponder } from './stun-responder.js'

export interface PeerDaemonOptions {
  readonly port: number
  /** Address to listen on; `::` (every interface) on a router, `127.0.0.1` in a lab. */
  readonly host: string
  readonly dataDir: string
  /** Written as `author`; LibreMesh uses the hostname. */
  readonly name: string
  /** Neighbours' base URLs; `/cgi-bin/shared-state/<type>` is appended. */
  readonly peers: readonly string[]
  readonly hooksDir: string
  readonly bleachIntervalMs: number
  readonly syncIntervalMs: number
  /** Delay that gathers changes arriving together into one sync round. */
  readonly syncDebounceMs: number
  readonly requestTimeoutMs: number
  readonly hookTimeoutMs: number
  readonly maxBodyBytes: number
  /** 'libremesh': full-table sync every sync interval and nothing else, as LibreMesh routers do (a baseline). */
  readonly mode?: 'malla' | 'libremesh'
  readonly log: Logger
  /**
   * LibreMesh's neighbour discovery: ping ff02::1 on these interfaces and sync with whoever answers.
   * The daemon must then listen on `::`, where link-local neighbours can reach it.
   */
  readonly discover?: {
    readonly interfaces: readonly string[]
    /** Port of the neighbours' daemons; this daemon's own port when absent. */
    readonly port?: number
    readonly intervalMs: number
    /** The ping program; `ping` from PATH when absent. */
    readonly pingCommand?: string
  }
  /**
   * An RFC 5389 Binding responder on UDP, on `host` like HTTP, so that pages get a server-reflexive
   * candidate with their real address (`iceServers: [{urls: 'stun:<router>:<port>'}]`). Absent: none.
   */
  readonly stun?: { readonly port: number }
  /** Where the page bundle (`malla.js`, `malla.js.map`) is read from at start; the package's `dist/browser/` when absent. */
  readonly bundleDir?: string
}

/** How long a table must be quiet before its journal is folded into its file. */
const COMPACT_AFTER_MS = 1000

export const DEFAULTS = {
  port: 8080,
  host: '::',
  bleachIntervalMs: 120_000,
  syncIntervalMs: 60_000,
  syncDebounceMs: 0,
  requestTimeoutMs: 3000,
  hookTimeoutMs: 10_000,
  maxBodyBytes: 1024 * 1024,
  /** STUN's registered port (RFC 5389 §18.4). */
  stunPort: 3478,
} as const

/**
 * `malla peer`: a router's shared-state daemon. It serves LibreMesh's endpoint, keeps tables durably in
 * LibreMesh's file layout, bleaches periodically, syncs each table with its peers periodically and after
 * every substantial change, and runs hooks. Files changed by another process (the CLI with `--data`)
 * are noticed and treated like local changes.
 */
export class PeerDaemon {
  readonly replica: Replica
  readonly changes: ChangeLog
  private readonly budget = new WorkBudget()
  private readonly store: FileStore
  private readonly hooks: HookRunner
  private readonly server: Server
  private readonly pushSockets: PushSockets
  private readonly timers: NodeJS.Timeout[] = []
  private readonly compactions = new Map<string, NodeJS.Timeout>()
  private readonly watchers: FSWatcher[] = []
  private readonly sync: NeighbourSync
  private stopped = false
  private address: AddressInfo | undefined
  private discovery: NeighbourDiscovery | undefined
  private readonly stunResponder: StunResponder | undefined
  private bundle: BrowserBundle | undefined
  private linksTimer: ReturnType<typeof setTimeout> | undefined
  /** The neighbour list last published in `malla-links`, as JSON. */
  private linksPublished: string | undefined

  constructor(private readonly options: PeerDaemonOptions) {
    const log = options.log
    this.store = new FileStore(options.dataDir, { log })
    this.replica = new Replica({ store: this.store, author: options.name, log })
    this.changes = new ChangeLog(this.replica)
    this.hooks = new HookRunner({ dir: options.hooksDir, timeoutMs: options.hookTimeoutMs, log })
    this.sync = new NeighbourSync({
      replica: this.replica,
      poster: nodeHttpPoster,
      peers: options.peers,
      timeoutMs: options.requestTimeoutMs,
      debounceMs: options.syncDebounceMs,
      log,
      mode: options.mode,
      onNeighbours: () => this.scheduleLinks(),
    })
    this.stunResponder = options.stun ? new StunResponder({ port: options.stun.port, host: options.host, log }) : undefined
    this.server = createServer((req, res) => {
      void handleRequest(
        {
          replica: this.replica,
          changes: this.changes,
          budget: this.budget,
          name: options.name,
          maxBodyBytes: options.maxBodyBytes,
          log,
          neighbours: () => this.sync.info(),
          traffic: () => this.sync.traffic(),
          syncNow: (ref, urls) => this.syncNow(ref, urls),
          bundle: this.bundle,
          stun: () => this.stunResponder?.info(),
        },
        req,
        res,
      )
    })
    this.pushSockets = new PushSockets({ replica: this.replica, maxFrameBytes: options.maxBodyBytes, log })
    this.server.on('upgrade', (req, socket, head) => this.pushSockets.upgrade(req, socket, head))
    // Slow or stalled clients must not hold sockets forever.
    this.server.requestTimeout = 30_000
    this.server.headersTimeout = 10_000
    this.server.keepAliveTimeout = 5_000
  }

  /**
   * Publishes this router's malla neighbours (by name) in `malla-links`, soon after they change and again
   * at every bleach round, so pages can count hops to other peers' routers (docs/protocol.md §12.5).
   */
  private scheduleLinks(): void {
    if (this.linksTimer !== undefined || this.options.mode === 'libremesh') return
    this.linksTimer = setTimeout(() => {
      this.linksTimer = undefined
      void this.publishLinks(false)
    }, 100)
  }

  private async publishLinks(always: boolean): Promise<void> {
    const names = [...new Set(this.sync.info().flatMap((n) => (n.malla && n.lastError === undefined && n.name ? [n.name] : [])))].sort()
    const text = JSON.stringify(names)
    if (!always && text === this.linksPublished) return
    if (names.length === 0 && this.linksPublished === undefined) return
    this.linksPublished = text
    await this.replica.insert(LINKS_TYPE, [[this.options.name, linksData(names)]]).catch((e: Error) => this.options.log.warn('could not publish links', { error: e.message }))
  }

  /** What the daemon knows of each peer (for `/malla/v1/info` and the CLI). */
  neighbours(): NeighbourInfo[] {
    return this.sync.info()
  }

  /** Adds or forgets a neighbour found at run time (discovery). */
  addNeighbour(base: string): void {
    this.sync.addNeighbour(base, 'discovered')
  }

  removeNeighbour(base: string): void {
    this.sync.removeNeighbour(base)
  }

  /** Base URL clients use, e.g. `http://127.0.0.1:8080/`. */
  get url(): string {
    if (!this.address) throw new Error('daemon not started')
    const host = this.address.family === 'IPv6' ? `[${this.address.address === '::' ? '::1' : this.address.address}]` : this.address.address
    return `http://${host}:${this.address.port}/`
  }

  async start(): Promise<string> {
    const { log } = this.options
    await mkdir(this.options.dataDir, { recursive: true })
    this.replica.on('change', (event) => {
      log.info('changed', { type: event.type, flavour: event.flavour === 'ttl' ? undefined : event.flavour, keys: event.keys.length, origin: event.origin })
      const ref: TableRef = { flavour: event.flavour, type: event.type }
      this.hooks.trigger(event.type, async () => (await this.replica.read(ref)).text)
      this.scheduleCompaction(ref)
    })
    this.sync.start()
    // Load every table now, so a corrupt file is moved aside at start and not on the first request.
    for (const ref of await this.replica.list()) await this.replica.read(ref)
    this.watchDataDir()
    const { bundle, missing } = await loadBrowserBundle(this.options.bundleDir)
    this.bundle = bundle
    if (missing.length > 0) {
      const message = bundle.assets.has('malla.js') ? 'browser bundle has no source map' : 'browser bundle not built: /malla.js answers 404 until `npm run build` and a restart'
      log.warn(message, { missing: missing.map((m) => `${m.path} (${m.error})`).join(', ') })
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.address = this.server.address() as AddressInfo
    this.timers.push(
      setInterval(() => {
        // Bleach ages our own links entry too: publish it again, as LibreMesh nodes republish their data.
        void this.bleachAll().then(() => (this.linksPublished !== undefined ? this.publishLinks(true) : undefined))
      }, this.options.bleachIntervalMs),
    )
    // Rounds never overlap: on a slow mesh a round may outlast the period, and piling them up only makes it slower.
    let round: Promise<void> | undefined
    this.timers.push(
      setInterval(() => {
        round ??= this.sync.antiEntropy().finally(() => (round = undefined))
      }, this.options.syncIntervalMs),
    )
    log.info('listening', { url: this.url, name: this.options.name, data: this.options.dataDir, peers: this.options.peers.join(',') || undefined })
    await this.startStun()
    const discover = this.options.discover
    if (discover && discover.interfaces.length > 0 && !this.stopped) {
      this.discovery = new NeighbourDiscovery({
        interfaces: discover.interfaces,
        port: discover.port ?? this.address.port,
        intervalMs: discover.intervalMs,
        pingCommand: discover.pingCommand,
        add: (base) => this.addNeighbour(base),
        remove: (base) => this.removeNeighbour(base),
        log,
      })
      this.discovery.start()
    }
    return this.url
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.discovery?.stop()
    await this.stunResponder?.stop()
    for (const t of this.timers) clearInterval(t)
    clearTimeout(this.linksTimer)
    for (const w of this.watchers) w.close()
    this.pushSockets.close()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    await this.sync.stop()
    this.changes.close()
    await this.hooks.idle()
    // Leave every file holding its whole table, in LibreMesh's layout.
    for (const t of this.compactions.values()) clearTimeout(t)
    for (const ref of await this.replica.list()) {
      await this.replica.compact(ref).catch((e: Error) => this.options.log.error('compaction failed', { table: refKey(ref), error: e.message }))
    }
  }

  /**
   * Logged after the HTTP line, and without its `url=` field, so whatever waits for ` listening url=`
   * still reads the HTTP address. A failure is the STUN port's alone: HTTP goes on.
   */
  private async startStun(): Promise<void> {
    if (!this.stunResponder || this.stopped) return
    try {
      await this.stunResponder.start()
      this.options.log.info('stun listening', { urls: this.stunResponder.url() })
    } catch (e) {
      const level = this.stopped ? 'debug' : 'error'
      this.options.log[level]('stun responder not started; HTTP goes on without it', { error: (e as Error).message })
    }
  }

  /** Bleaches every TTL table once (LibreMesh's cron does this every 2 minutes). */
  async bleachAll(): Promise<void> {
    for (const ref of await this.replica.list('ttl')) {
      try {
        const snap = await this.replica.bleach(ref.type)
        this.options.log.debug('bleached', { type: ref.type, entries: snap.table.size, dropped: snap.changed.length })
      } catch (e) {
        this.options.log.error('bleach failed', { type: ref.type, error: (e as Error).message })
      }
    }
  }

  /** Syncs one table now with the given endpoint URLs, or with every peer. Failures are reported per URL. */
  syncNow(ref: TableRef, urls?: readonly string[]): Promise<SyncOutcome[]> {
    return this.sync.syncNow(ref, urls)
  }

  /**
   * Small changes go to a table's journal (fast and durable); once the table has been quiet for a moment it is
   * rewritten whole, so `DATA/<type>.json` soon holds the current table for anything reading LibreMesh's layout.
   */
  private scheduleCompaction(ref: TableRef): void {
    const key = refKey(ref)
    clearTimeout(this.compactions.get(key))
    this.compactions.set(
      key,
      setTimeout(() => {
        this.compactions.delete(key)
        this.replica.compact(ref).catch((e: Error) => this.options.log.error('compaction failed', { table: key, error: e.message }))
      }, COMPACT_AFTER_MS),
    )
  }

  /** Notices tables written by another process (the CLI with `--data`), so hooks and sync follow at once. */
  private watchDataDir(): void {
    const pending = new Map<string, NodeJS.Timeout>()
    const watchOne = (dir: string, flavour: Flavour) => {
      if (this.stopped) return
      try {
        const w = watch(dir, (_event, file) => {
          const name = typeof file === 'string' && file.endsWith('.json') ? file.slice(0, -5) : ''
          if (!isTypeName(name)) return
          const ref: TableRef = { flavour, type: name as TypeName }
          clearTimeout(pending.get(refKey(ref)))
          pending.set(refKey(ref), setTimeout(() => {
            pending.delete(refKey(ref))
            this.replica.refresh(ref).catch((e: Error) => this.options.log.error('refresh failed', { table: refKey(ref), error: e.message }))
          }, 20))
        })
        w.on('error', (e) => this.options.log.warn('data directory watch failed', { dir, error: e.message }))
        this.watchers.push(w)
      } catch (e) {
        this.options.log.debug('data directory not watched', { dir, error: (e as Error).message })
      }
    }
    watchOne(this.options.dataDir, 'ttl')
    void mkdir(join(this.options.dataDir, 'multiwriter'), { recursive: true }).then(() => watchOne(join(this.options.dataDir, 'multiwriter'), 'multiwriter'))
  }
}
