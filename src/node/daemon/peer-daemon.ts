import { watch, type FSWatcher } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { BlockList, isIP, type AddressInfo, type Socket } from 'node:net'
import { MallaError } from '../../core/errors.js'
import { join } from 'node:path'
import type { Logger } from '../../core/log.js'
import { isTypeName } from '../../core/schema.js'
import type { Flavour, TypeName } from '../../core/types.js'
import { ChangeLog, type ChangeLogOptions } from '../../replica/change-log.js'
import { Replica } from '../../replica/replica.js'
import { tablePacking } from './table-packing.js'
import type { MemoryMode } from './heap-tuning.js'
import { refKey, type TableRef } from '../../storage/table-store.js'
import type { SyncOutcome } from '../../sync/full-table-sync.js'
import { NeighbourSync, type NeighbourInfo } from '../../sync/neighbour-sync.js'
import { WorkBudget } from '../../sync/work-budget.js'
import { FileStore } from '../storage/file-store.js'
import { nodeHttpPoster } from '../transport/node-http-poster.js'
import { NeighbourDiscovery } from '../discovery/neighbour-discovery.js'
import { loadBrowserBundle, type BrowserBundle } from './browser-bundle.js'
import { loadWebApp, type WebApp } from './web-app.js'
import { HookRunner } from './hook-runner.js'
import { LINKS_TYPE, linksData } from '../../signaling/router-links.js'
import { handleRequest } from './http-routes.js'
import { PushSockets } from './push-socket.js'
import { LogThrottle } from '../log.js'
import { CHANGE_STREAM_LIMITS, ChangeStreams, type ChangeStreamLimits } from './change-stream.js'
import { baseAddress, baseHost, normalizeAddress } from '../../transport/address.js'
import { isLocal, SOURCE_LIMITS, SourceLimits, type SourceLimitOptions } from './source-limits.js'
import { StunResponder } from './stun-responder.js'
import { roomAdmission } from '../../signaling/room-admission.js'
import { AsyncSync } from '../async/async-sync.js'
import { WantedTables } from './wanted-tables.js'

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
  /** Where the web app served at `/` is read from at start; the package's `dist/web/` when absent. */
  readonly webDir?: string
  /**
   * Networks (CIDR, `10.13.0.0/16`, `fd00::/8`) whose hosts may use the operator's verbs of `/malla/v1/`
   * (insert, remove, bleach, sync) besides this machine, which always may. None by default.
   */
  readonly apiAllow?: readonly string[]
  /** Rate and size limits per sending address; SOURCE_LIMITS where absent. */
  readonly sourceLimits?: Partial<SourceLimitOptions>
  /** Bounds of the change log and its feed clients; the defaults where absent. */
  readonly changeLog?: ChangeLogOptions
  /**
   * `lean` (what `malla peer --memory` gives a router): large tables keep their data deflated, for ~5× less
   * memory and ~25 µs more per entry read out of order. Default `fast`: packed, but plain.
   */
  readonly memory?: MemoryMode
  readonly changeStreams?: Partial<ChangeStreamLimits>
  /**
   * Tables to sync with every neighbour even while this node holds none of them (LibreMesh's types: a Lua
   * router syncs only the types its own cron jobs name, so it never sends this node the others). None by default
   * here; `malla peer` gives LibreMesh's list (`--types`).
   */
  readonly tables?: readonly TableRef[]
  /**
   * LibreMesh's shared-state-async (docs/protocol.md §20): serve it on `port` (none: only sync out), sync
   * `types` with `peers`, and with neighbours found by `discover` on `discoverPort`. Absent: not spoken.
   */
  readonly async?: {
    readonly port?: number
    readonly peers: ReadonlyArray<{ readonly host: string; readonly port: number }>
    readonly types: ReadonlyMap<string, number>
    readonly discoverPort: number
  }
}

/** Sockets the daemon keeps open at once, and from one address (neighbours and this machine excepted). */
const MAX_CONNECTIONS = 2048
const MAX_CONNECTIONS_PER_SOURCE = 64

/**
 * The networks given by `--api-allow`, as a BlockList (used here as an allow list). Throws BAD_INPUT for a
 * network that does not parse.
 */
export function apiAllowList(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr)
    const family = m && isIP(m[1] as string)
    const bits = Number(m?.[2])
    if (!m || !family || bits > (family === 4 ? 32 : 128)) throw new MallaError('BAD_INPUT', `bad network ${JSON.stringify(cidr)}: expected CIDR such as 10.13.0.0/16 or fd00::/8`)
    list.addSubnet(m[1] as string, bits, family === 4 ? 'ipv4' : 'ipv6')
  }
  return list
}

/** How long a table must be quiet before its journal is folded into its file. */
const COMPACT_AFTER_MS = 1000
/** How long a neighbour that stopped answering stays in this router's `malla-links` entry (docs/protocol.md §12.5). */
const LINK_GRACE_MS = 60_000

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
  private readonly streams: ChangeStreams
  private readonly limits: SourceLimits
  private readonly logThrottle = new LogThrottle()
  private readonly apiAllow: BlockList
  private readonly connections = new Map<string, number>()
  private neighbourKey = ''
  private neighbourSet: ReadonlySet<string> = new Set()
  private readonly timers: NodeJS.Timeout[] = []
  private readonly compactions = new Map<string, NodeJS.Timeout>()
  private readonly watchers: FSWatcher[] = []
  private readonly sync: NeighbourSync
  private stopped = false
  private address: AddressInfo | undefined
  private discovery: NeighbourDiscovery | undefined
  private readonly stunResponder: StunResponder | undefined
  /** Tables synced with every neighbour even while this node holds none of them. */
  readonly wanted: WantedTables
  /** malla's end of shared-state-async, when spoken. */
  readonly asyncSync: AsyncSync | undefined
  private bundle: BrowserBundle | undefined
  private web: WebApp | undefined
  private linksTimer: ReturnType<typeof setTimeout> | undefined
  /** When a failing neighbour's grace in the links entry ends. */
  private linksRecheck: ReturnType<typeof setTimeout> | undefined
  /** The neighbour list last published in `malla-links`, as JSON. */
  private linksPublished: string | undefined

  constructor(private readonly options: PeerDaemonOptions) {
    const log = options.log
    this.wanted = new WantedTables([{ flavour: 'ttl', type: LINKS_TYPE }, ...(options.tables ?? [])])
    this.store = new FileStore(options.dataDir, { log })
    this.replica = new Replica({ store: this.store, author: options.name, log, admit: roomAdmission(), packing: tablePacking(options.memory ?? 'fast') })
    this.changes = new ChangeLog(this.replica, options.changeLog)
    this.streams = new ChangeStreams(this.changes, log, { ...CHANGE_STREAM_LIMITS, ...options.changeStreams })
    this.limits = new SourceLimits({ ...SOURCE_LIMITS, ...options.sourceLimits }, (address) => this.neighbourAddresses().has(address) || this.asyncSync?.isPeerAddress(address) === true)
    this.apiAllow = apiAllowList(options.apiAllow ?? [])
    this.hooks = new HookRunner({ dir: options.hooksDir, timeoutMs: options.hookTimeoutMs, log })
    this.sync = new NeighbourSync({
      replica: this.replica,
      poster: nodeHttpPoster,
      peers: options.peers,
      timeoutMs: options.requestTimeoutMs,
      debounceMs: options.syncDebounceMs,
      log,
      name: options.name,
      mode: options.mode,
      onNeighbours: () => this.scheduleLinks(),
      // LibreMesh mode publishes no links and syncs only the tables it holds, as a Lua router does.
      ...(options.mode === 'libremesh' ? {} : { tables: this.wanted }),
    })
    this.asyncSync = options.async
      ? new AsyncSync({
          replica: this.replica,
          name: options.name,
          bleachIntervalMs: options.bleachIntervalMs,
          port: options.async.port,
          host: options.host,
          types: options.async.types,
          peers: options.async.peers,
          timeoutMs: options.requestTimeoutMs,
          log,
          limits: this.limits,
        })
      : undefined
    this.stunResponder = options.stun ? new StunResponder({ port: options.stun.port, host: options.host, log }) : undefined
    this.server = createServer((req, res) => {
      void handleRequest(
        {
          replica: this.replica,
          budget: this.budget,
          name: options.name,
          maxBodyBytes: options.maxBodyBytes,
          log,
          neighbours: () => this.sync.info(),
          traffic: () => this.sync.traffic(),
          syncNow: (ref, urls) => this.syncNow(ref, urls),
          heard: (address, name) => this.sync.heard(address, name),
          bundle: this.bundle,
          web: this.web,
          stun: () => this.stunResponder?.info(),
          streams: this.streams,
          limits: this.limits,
          logThrottle: this.logThrottle,
          asked: (ref) => this.wanted.ask(ref),
          mayAdminister: (address) => this.apiAllow.check(normalizeAddress(address), normalizeAddress(address).includes(':') ? 'ipv6' : 'ipv4'),
        },
        req,
        res,
      ).catch((e: Error) => {
        // handleRequest answers every error itself; reaching here is a bug, which must not take the daemon down.
        log.error('request handler failed', { url: req.url?.slice(0, 200), error: e.message })
        res.destroy()
      })
    })
    this.pushSockets = new PushSockets({ replica: this.replica, maxFrameBytes: options.maxBodyBytes, log, limits: this.limits, logThrottle: this.logThrottle })
    this.server.on('upgrade', (req, socket, head) => this.pushSockets.upgrade(req, socket, head))
    // Slow or stalled clients must not hold sockets forever.
    this.server.requestTimeout = 30_000
    this.server.headersTimeout = 10_000
    this.server.keepAliveTimeout = 5_000
    this.server.maxConnections = MAX_CONNECTIONS
    this.server.on('connection', (socket) => this.admitConnection(socket))
  }

  /**
   * At most MAX_CONNECTIONS_PER_SOURCE sockets from one address (this machine and neighbours excepted): one
   * sender cannot take the whole MAX_CONNECTIONS, with their buffers, from everyone else.
   */
  private admitConnection(socket: Socket): void {
    const address = normalizeAddress(socket.remoteAddress ?? 'unknown')
    if (isLocal(socket) || this.neighbourAddresses().has(address)) return
    const n = (this.connections.get(address) ?? 0) + 1
    if (n > MAX_CONNECTIONS_PER_SOURCE) {
      socket.destroy()
      return
    }
    this.connections.set(address, n)
    socket.once('close', () => {
      const left = (this.connections.get(address) ?? 1) - 1
      if (left > 0) this.connections.set(address, left)
      else this.connections.delete(address)
    })
  }

  /** Addresses of the neighbours known now, as sockets report them: they get the neighbours' budgets. */
  private neighbourAddresses(): ReadonlySet<string> {
    const bases = this.sync.info().map((n) => n.base)
    const key = bases.join(' ')
    if (key !== this.neighbourKey) {
      this.neighbourKey = key
      this.neighbourSet = new Set(bases.flatMap((b) => baseAddress(b) ?? []))
    }
    return this.neighbourSet
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
    const now = Date.now()
    const linked = new Set<string>()
    let recheckAt = Number.POSITIVE_INFINITY
    // A name comes only with a malla answer. A neighbour that failed stays listed for LINK_GRACE_MS after its
    // last answer: on a busy mesh one timeout must not rewrite this entry, since each rewrite crosses every link
    // of the mesh and so makes more timeouts.
    for (const n of this.sync.info()) {
      if (n.name === undefined || n.lastOkAt === undefined) continue
      if (n.lastError === undefined) linked.add(n.name)
      else if (now - n.lastOkAt < LINK_GRACE_MS) {
        linked.add(n.name)
        recheckAt = Math.min(recheckAt, n.lastOkAt + LINK_GRACE_MS)
      }
    }
    clearTimeout(this.linksRecheck)
    this.linksRecheck = recheckAt === Number.POSITIVE_INFINITY || this.stopped ? undefined : setTimeout(() => this.scheduleLinks(), recheckAt - now + 1)
    const names = [...linked].sort()
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
    const host = baseHost(base)
    if (host !== undefined && this.options.async) this.asyncSync?.addPeer(host, this.options.async.discoverPort)
  }

  removeNeighbour(base: string): void {
    this.sync.removeNeighbour(base)
    const host = baseHost(base)
    if (host !== undefined && this.options.async) this.asyncSync?.removePeer(host, this.options.async.discoverPort)
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
    // A save killed mid-way leaves a temp file holding a whole copy of its table: nothing else removes it.
    for (const path of await this.store.removeStaleTemps()) log.info('removed a temp file left by a killed save', { path })
    // Load every table now, so unreadable parts are set aside at start and not on the first request.
    for (const ref of await this.replica.list()) await this.replica.read(ref)
    this.watchDataDir()
    const { bundle, missing } = await loadBrowserBundle(this.options.bundleDir)
    this.bundle = bundle
    if (missing.length > 0) {
      const message = bundle.assets.has('malla.js') ? 'browser bundle has no source map' : 'browser bundle not built: /malla.js answers 404 until `npm run build` and a restart'
      log.warn(message, { missing: missing.map((m) => `${m.path} (${m.error})`).join(', ') })
    }
    const web = await loadWebApp(this.options.webDir)
    this.web = web.app
    if (web.error !== undefined) log.warn('web app not built: / answers 404 until `npm run build` and a restart', { dir: web.app.dir, error: web.error })
    await new Promise<void>((resolve, reject) => {
      // Said in the flags' terms: what a person changes to get past it.
      const failed = (e: NodeJS.ErrnoException) => {
        const { port, host } = this.options
        if (e.code === 'EADDRINUSE') reject(new MallaError('BUSY', `port ${port} on ${host} is in use (another daemon?): choose another with --port`, { cause: e }))
        else if (e.code === 'EACCES') reject(new MallaError('FORBIDDEN', `port ${port} needs privileges this process has not: choose one above 1023 with --port`, { cause: e }))
        else if (e.code === 'EADDRNOTAVAIL') reject(new MallaError('BAD_INPUT', `--host ${host} is not an address of this machine`, { cause: e }))
        else reject(e)
      }
      this.server.once('error', failed)
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', failed)
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
    const antiEntropy = () => (round ??= this.sync.antiEntropy().finally(() => (round = undefined)))
    this.timers.push(setInterval(antiEntropy, this.options.syncIntervalMs))
    // A node that restarts with tables catches up with its configured neighbours now, not a period later.
    if (this.options.peers.length > 0 && this.options.mode !== 'libremesh') void antiEntropy()
    if (this.asyncSync && !this.stopped) {
      const asyncPort = await this.asyncSync.start()
      if (asyncPort !== undefined) log.info('shared-state-async listening', { port: asyncPort, types: [...(this.options.async?.types.keys() ?? [])].join(',') })
    }
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
    await this.asyncSync?.stop()
    for (const t of this.timers) clearInterval(t)
    clearTimeout(this.linksTimer)
    clearTimeout(this.linksRecheck)
    for (const w of this.watchers) w.close()
    this.pushSockets.close()
    this.streams.close()
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
    this.asyncSync?.bridge.bleached()
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
