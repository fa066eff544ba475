/**
 * `npm run bench -- signaling`: how long two Chromium pages take to open a data channel when malla's
 * shared-state tables carry the signaling, against the floor (the same two connections handed their
 * descriptions directly in JavaScript) and against PeerJS with a local PeerServer, what a developer would
 * use instead. All four are measured in one run, N connections each (50; `--quick`: 5):
 *
 * (a) floor: two RTCPeerConnections in one page, made by the project's own browser adapter
 *     (`browserRtcFactory` from the router's /malla.js, with the router's STUN URL, as `joinRoom` gives it),
 *     the offer made beforehand (as a published pool offer is); t0 = the answerer starts `acceptOffer`,
 *     t1 = the channel is open on both sides (the answer applied with `acceptAnswer`).
 * (b) one malla router: page A joined with `{ target: 0, pool: 1 }` (it only offers), page B with
 *     `{ target: 0, pool: 0 }`, both through router n0, before n1..n3 start (so n0 is a router alone: on
 *     this one machine its neighbours' relaying would take the pages' cores); once B's replica holds A's open offer,
 *     t0 = `B.mesh.setTarget(1)`, t1 = B's mesh emits 'peer'. B then leaves the connection and waits
 *     for A's next offer.
 * (c) run last: the same with A's page served by n0 and B's by n3, three hops apart along a chain of four daemons,
 *     each in its own network namespace (bench/lib/netns.ts, `malla lab --netns`'s code), each browser in
 *     its router's namespace.
 * (b) and (d) take turns, 10 connections at a time, as the target compares them.
 * (d) PeerJS: a PeerServer (npm `peer`) inside n0's namespace on n0's chain address, two pages with the
 *     PeerJS client, `iceServers: []`; t0 = `B.connect(A)`, t1 = that DataConnection's 'open' on B.
 *
 * Needs root (network namespaces) and Debian's /usr/bin/chromium; without either it says so and fails.
 * Every browser, process, namespace and temporary directory is removed at the end however the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { chmod, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { followChanges, type FeedEvent } from '../src/transport/change-feed-client.js'
import { signalTypes } from '../src/signaling/signal-records.js'
import { Cleanup } from './lib/cleanup.js'
import { identityApiScript } from './lib/identity-api-script.js'
import { CLI_PATH, sleep, startDaemon, type BenchDaemon } from './lib/daemon.js'
import { formatNumber } from './lib/format.js'
import { chainAddress, NETNS_PORT, netnsUnavailable, openNetnsChain, waitDiscoveredCounts, type NetnsChain } from './lib/netns.js'
import { waitOnWake } from './lib/feed.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { median, percentile, summarize } from './lib/stats.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const BUNDLE = fileURLToPath(new URL('../dist/browser/malla.js', import.meta.url))
const require = createRequire(import.meta.url)
const NODE_MODULES = fileURLToPath(new URL('../node_modules/', import.meta.url))
const PEERJS_CLIENT = join(NODE_MODULES, 'peerjs/dist/peerjs.min.js')
/** The server's CommonJS entry, required by the script run in the namespace. */
const PEERJS_SERVER_MODULE = require.resolve('peer')
const version = (pkg: string): string => (JSON.parse(readFileSync(join(NODE_MODULES, pkg, 'package.json'), 'utf8')) as { version: string }).version
const PEERJS_PORT = 9000
const PEERJS_PATH = '/bench'

const HOPS = 3
/** A connection not open this long after t0 is a failure. */
const OPEN_TIMEOUT_MS = 10_000
/** (b) and (d) alternate in blocks of this many connections. */
const BLOCK = 10
/** Before each t0: the previous connection's teardown and the new offer's writes are over. */
const QUIET_GAP_MS = 100
/** How long B may wait for A's next open offer to be in its replica. */
const OFFER_WAIT_MS = 15_000
/** After a failure: the mesh abandons its attempt after its connect timeout, checked every second. */
const SETTLE_AFTER_FAILURE_MS = 13_000
/** Waits for each connection's last signaling writes to reach the routers' feeds after the pages left. */
const WITHDRAWALS_WAIT_MS = 15_000
const DISCOVERY_TIMEOUT_MS = 15_000
const BYTES_TARGET = 1024
const SUCCESS_TARGET = 99.5

/** Milliseconds since the epoch, sub-millisecond: the same clock in this process and in every page on the machine. */
const wallMs = (): number => performance.timeOrigin + performance.now()

type ModeName = 'a' | 'b' | 'c' | 'd' | 'e'
const MODE_NAMES: readonly ModeName[] = ['a', 'b', 'c', 'd', 'e']
/** Each mode joins a room of its own, so one mode's records never meet the next one's. */
const roomOf = (mode: ModeName): string => `bench-${mode}`
const isOffers = (type: string): boolean => type.endsWith('-_offers')
const isAnswers = (type: string): boolean => type.endsWith('-_answers')

interface Attempt {
  readonly ok: boolean
  /** t1 - t0, ms (successes only). */
  readonly ms?: number
  readonly error?: string
  /** Signaling bytes of this connection (successes only). */
  bytes?: number
  /** (b)/(c): entries written for it; (d): frames. */
  messages?: number
  /** (b)/(c): when A's mesh emitted 'peer', ms after t0. (d): bytes of the frames the pages sent, each message once. */
  other?: number
  /** t0 (wallMs in the page), and for (b)/(c) the offer key B answered. */
  t0?: number
  key?: string
  /** When each step happened, ms after t0 (see `timeline`). */
  timeline?: Record<string, number>
}

interface ModeResult {
  readonly mode: ModeName
  readonly attempts: Attempt[]
  readonly notes: string[]
  /** (b)/(c): the writes of the first connection, as counted (type, key, bytes, data). */
  sample?: string[]
}

// ---------------------------------------------------------------- environment

async function unavailable(): Promise<string | undefined> {
  const why = await netnsUnavailable()
  if (why !== undefined) return why
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (Debian's chromium package): the pages run in it`
  if (!existsSync(CLI_PATH) || !existsSync(BUNDLE)) return `${!existsSync(CLI_PATH) ? CLI_PATH : BUNDLE} is missing: run \`npm run build\` first`
  return undefined
}

/** An error printed as its message alone (bench/run.ts prints the stack). */
function plainError(message: string): Error {
  const e = new Error(message)
  e.stack = message
  return e
}

/** Rejects after `ms` with `what`; the work itself goes on (the browsers are closed at cleanup). */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms / 1000} s`)), ms)
    }),
  ])
}

async function getJson<T>(url: string, timeoutMs = 5000): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`)
  return (await res.json()) as T
}

// ---------------------------------------------------------------- the routers' signaling entries

interface Seen {
  readonly type: string
  readonly key: string
  /** UTF-8 bytes of `"key":{entry}`, the entry as it stands in a table or a push body. */
  readonly bytes: number
  readonly withdrawal: boolean
  readonly data: unknown
  /** Router name → when (wallMs) its feed delivered this write. */
  readonly at: Map<string, number>
}

/** Every distinct write (type, key, author, clock) of the signaling tables that the routers' feeds delivered. */
class EntryLog {
  readonly writes = new Map<string, Seen>()
  private readonly controller = new AbortController()
  private readonly waiters = new Set<() => void>()

  async follow(name: string, base: string): Promise<void> {
    let hello!: () => void
    const ready = new Promise<void>((resolve) => (hello = resolve))
    void followChanges(base, (e) => this.event(name, e, hello), { types: MODE_NAMES.flatMap((m) => Object.values(signalTypes(roomOf(m)))), signal: this.controller.signal })
    await bounded(ready, 10_000, `the change feed of ${name}`)
  }

  private event(router: string, e: FeedEvent, hello: () => void): void {
    if (e.event !== 'change') return hello()
    const at = wallMs()
    for (const [key, entry] of Object.entries(e.entries)) {
      if (entry === null) continue // gone (bleached away), not a write
      const en = entry as { author?: string; clock?: string; data?: unknown }
      const id = `${e.type}\0${key}\0${en.author ?? ''}\0${en.clock ?? ''}`
      let seen = this.writes.get(id)
      if (!seen) {
        seen = { type: e.type, key, bytes: Buffer.byteLength(`${JSON.stringify(key)}:${JSON.stringify(entry)}`), withdrawal: en.data === null || en.data === undefined, data: en.data, at: new Map() }
        this.writes.set(id, seen)
      }
      if (!seen.at.has(router)) seen.at.set(router, at)
    }
    for (const w of [...this.waiters]) w()
  }

  /** The writes of one connection: its offer key (offer, taken mark, withdrawals) and the answers to it. */
  forOffer(key: string): Seen[] {
    return [...this.writes.values()].filter((s) => (isOffers(s.type) && s.key === key) || (isAnswers(s.type) && s.key.startsWith(`${key}>`)))
  }

  waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    return waitOnWake(this.waiters, condition, timeoutMs)
  }

  close(): void {
    this.controller.abort()
  }
}

// ---------------------------------------------------------------- browsers and pages

/** Headless Chromium whose network is namespace `ns` (a fresh profile; closed at cleanup). */
async function browserIn(cleanup: Cleanup, dir: string, ns: string, name: string): Promise<BrowserContext> {
  const wrapper = join(dir, `chromium-in-${name}`)
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec '${ns}' ${CHROMIUM} "$@"\n`)
  await chmod(wrapper, 0o755)
  const context = await chromium.launchPersistentContext(join(dir, `profile-${name}`), { executablePath: wrapper, headless: true, args: CHROMIUM_FLAGS, timeout: 30_000 })
  cleanup.add(`close the browser in ${ns}`, () => bounded(context.close(), 10_000, 'closing chromium'))
  // tsx compiles this file with esbuild's keepNames, which wraps named functions in the page callbacks below
  // in a `__name(fn, "name")` helper that only this process defines: the pages get a no-op one.
  await context.addInitScript({ content: 'globalThis.__name = globalThis.__name || ((f) => f)' })
  // (e)'s pages make their keys with this (an IIFE bundle of bench/lib/identity-api.ts); it runs nothing until asked.
  await context.addInitScript({ content: await identityApiScript() })
  return context
}

/**
 * The page every tab loads: the router's `/debug/room` page, which opens nothing until its form is used, so that
 * nothing but the benchmark's code runs in the tab. (The router's `/debug/` is its live table view, which keeps a
 * change feed open, holding one of the 6 connections per host that Chromium allows a whole browser for all
 * its tabs, and reads a table again on every signaling write. A blank page fulfilled by Playwright would have
 * no address, and Chromium's Private Network Access then refuses its requests to the router's 10.x address.)
 */
const PAGE_PATH = '/debug/room'

async function openPage(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (e) => process.stderr.write(`page ${url}: uncaught ${e.message}\n`))
  await page.goto(new URL(PAGE_PATH, url).href, { timeout: 15_000 })
  return page
}

type PcEvent = { pc: string; what: string; t: number }

/**
 * Installs, in the page, `__WatchedPC`: the page's own RTCPeerConnection with listeners that note when
 * its ICE, connection and gathering states change, when it emits a candidate and when a remote description
 * has been applied (into `__pcLog`); the page's fetch() notes when each request left and was answered (as
 * connection -1). Nothing else differs. `replaceGlobal` makes it the page's RTCPeerConnection (for PeerJS);
 * otherwise /malla.js is imported as `__malla`, and the malla pages give it to `browserRtcFactory`.
 */
async function instrument(page: Page, replaceGlobal: boolean): Promise<void> {
  await page.evaluate(async (replaceGlobal) => {
    const now = () => performance.timeOrigin + performance.now()
    const w = window as unknown as Record<string, unknown>
    const log: Array<{ pc: number; what: string; t: number }> = []
    w.__pcLog = log
    let next = 0
    class WatchedPC extends RTCPeerConnection {
      constructor(config?: RTCConfiguration) {
        super(config)
        const pc = next++
        const mark = (what: string) => log.push({ pc, what, t: now() })
        this.addEventListener('iceconnectionstatechange', () => mark(`ice ${this.iceConnectionState}`))
        this.addEventListener('connectionstatechange', () => mark(`pc ${this.connectionState}`))
        this.addEventListener('icegatheringstatechange', () => mark(`gathering ${this.iceGatheringState}`))
        this.addEventListener('icecandidate', (e) => mark(e.candidate?.candidate ? `candidate ${e.candidate.type}` : 'candidate end'))
        const apply = this.setRemoteDescription.bind(this) as (d: RTCSessionDescriptionInit) => Promise<void>
        this.setRemoteDescription = (async (d: RTCSessionDescriptionInit) => {
          mark(`applying ${d.type}`)
          await apply(d)
          mark(`remote ${d.type}`)
        }) as RTCPeerConnection['setRemoteDescription']
      }
    }
    w.__WatchedPC = WatchedPC
    const realFetch = window.fetch.bind(window)
    window.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const what = `${init?.method ?? 'GET'} ${String(input instanceof Request ? input.url : input).replace(location.origin, '')}`
      log.push({ pc: -1, what: `fetch ${what}`, t: now() })
      try { return await realFetch(input, init) } finally { log.push({ pc: -1, what: `fetched ${what}`, t: now() }) }
    }) as typeof fetch
    if (replaceGlobal) w.RTCPeerConnection = WatchedPC
    else w.__malla = await import(`${location.origin}/malla.js`)
  }, replaceGlobal)
}

/** Takes (and empties) the page's `__pcLog`, its connections named `<tag>:<n>`. */
async function takePcLog(page: Page, tag: string): Promise<PcEvent[]> {
  const log = await bounded(
    page.evaluate(() => {
      const log = (window as unknown as { __pcLog: Array<{ pc: number; what: string; t: number }> }).__pcLog
      return log.splice(0, log.length)
    }),
    5000,
    'reading the connection log',
  )
  return log.map((e) => ({ ...e, pc: `${tag}:${e.pc}` }))
}

/**
 * The steps of one connection, ms after t0, from the pages' connection logs: on the answering connection
 * (the one that got a remote offer after t0) and the offering one (a remote answer after t0), when the remote
 * description was applied, gathering completed, ICE and the whole connection (DTLS) reached 'connected'.
 */
function timeline(events: readonly PcEvent[], t0: number, names: { answerer: string; offerer: string }): Record<string, number> {
  const ev = events.filter((e) => e.t >= t0 && e.t <= t0 + OPEN_TIMEOUT_MS).sort((x, y) => x.t - y.t)
  const out: Record<string, number> = {}
  const roles = [
    [names.answerer, ev.find((e) => e.what === 'remote offer')?.pc, 'offer applied'],
    [names.offerer, ev.find((e) => e.what === 'remote answer')?.pc, 'answer applied'],
  ] as const
  for (const [name, pc, applied] of roles) {
    if (pc === undefined) continue
    const first = (test: (what: string) => boolean) => ev.find((e) => e.pc === pc && test(e.what))?.t
    const steps: Array<[string, number | undefined]> = [
      [`${applied.split(' ')[0]} given to setRemoteDescription`, first((w) => w === 'applying offer' || w === 'applying answer')],
      [applied, first((w) => w === 'remote offer' || w === 'remote answer')],
      ['host candidate', first((w) => w === 'candidate host')],
      ['srflx candidate', first((w) => w === 'candidate srflx')],
      ['gathering complete', first((w) => w === 'gathering complete')],
      ['ICE connected', first((w) => w === 'ice connected' || w === 'ice completed')],
      ['connected (DTLS)', first((w) => w === 'pc connected')],
    ]
    for (const [step, t] of steps) if (t !== undefined) out[`${name}: ${step}`] = t - t0
  }
  // Each page's first POST after t0 (B's: its answer; A's: the taken mark), from `instrument`'s fetch notes.
  for (const tag of new Set(ev.filter((e) => e.pc.endsWith(':-1')).map((e) => e.pc.split(':')[0] as string))) {
    const sent = ev.find((e) => e.pc === `${tag}:-1` && e.what.startsWith('fetch POST '))
    if (!sent) continue
    const done = ev.find((e) => e.pc === sent.pc && e.t >= sent.t && e.what === `fetched ${sent.what.slice('fetch '.length)}`)
    const path = sent.what.slice('fetch POST '.length).split('?')[0]
    out[`${tag}: POST ${path} sent`] = sent.t - t0
    if (done) out[`${tag}: POST ${path} answered`] = done.t - t0
  }
  return out
}

/**
 * One mode's blocks as one result. The per-block summaries of writes or frames (the same every block) are
 * kept from the first block only; every other note is kept once.
 */
function mergeBlocks(parts: readonly ModeResult[]): ModeResult {
  const summary = /writes per connection|WebSocket frames on the two pages/
  const notes = [...new Set(parts.flatMap((p, i) => p.notes.filter((x) => i === 0 || !summary.test(x))))].map((x) => (summary.test(x) && parts.length > 1 ? `${x} (first block of ${parts.length})` : x))
  return { mode: (parts[0] as ModeResult).mode, attempts: parts.flatMap((p) => p.attempts), notes, ...(parts[0]?.sample ? { sample: parts[0].sample } : {}) }
}

// ---------------------------------------------------------------- (a) floor

async function floorMode(ctx: BenchContext, page: Page, stunUrls: readonly string[], n: number): Promise<ModeResult> {
  const attempts: Attempt[] = []
  await instrument(page, false)
  for (let i = 0; i < n; i++) {
    const r = await bounded(
      page.evaluate(
        async ({ stunUrls, timeoutMs, gapMs }) => {
          const now = () => performance.timeOrigin + performance.now()
          type Peer = { createOffer(): Promise<string>; acceptOffer(s: string): Promise<string>; acceptAnswer(s: string): Promise<void>; on(e: string, f: (...a: unknown[]) => void): () => void; close(): void }
          const w = window as unknown as { __malla: { browserRtcFactory(pc: unknown, o: unknown): () => Peer }; __WatchedPC: unknown; __floorFactory?: () => Peer }
          // One factory for all connections, as a joined room has (it keeps a made-ahead RTCPeerConnection).
          const factory = (w.__floorFactory ??= w.__malla.browserRtcFactory(w.__WatchedPC, { stunUrls, connectTimeoutMs: timeoutMs }))
          const offerer = factory()
          const answerer = factory()
          const opened = (p: Peer) =>
            new Promise<number | string>((resolve) => {
              p.on('open', () => resolve(now()))
              p.on('close', (reason, detail) => resolve(`closed (${String(reason)}${detail ? `: ${String(detail)}` : ''})`))
            })
          const bothOpen = Promise.all([opened(offerer), opened(answerer)])
          try {
            const offer = await offerer.createOffer()
            await new Promise((r) => setTimeout(r, gapMs))
            const t0 = now()
            let timer: ReturnType<typeof setTimeout> | undefined
            const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))
            const work = (async () => {
              const answer = await answerer.acceptOffer(offer)
              await offerer.acceptAnswer(answer)
              return { answer, opens: await bothOpen }
            })()
            const r = await Promise.race([work, timeout])
            clearTimeout(timer)
            if (r === 'timeout') return { ok: false, error: `not open within ${timeoutMs} ms` }
            const bad = r.opens.find((o) => typeof o === 'string')
            if (bad !== undefined) return { ok: false, error: String(bad) }
            return { ok: true, t0, ms: Math.max(...(r.opens as number[])) - t0, bytes: offer.length + r.answer.length }
          } catch (e) {
            return { ok: false, error: (e as Error).message }
          } finally {
            offerer.close()
            answerer.close()
          }
        },
        { stunUrls: [...stunUrls], timeoutMs: OPEN_TIMEOUT_MS, gapMs: QUIET_GAP_MS },
      ),
      OPEN_TIMEOUT_MS + 10_000,
      'floor connection',
    ).catch((e: Error): Attempt => ({ ok: false, error: e.message }))
    const events = await takePcLog(page, 'a').catch(() => [] as PcEvent[])
    attempts.push({ ...r, ...(r.ok ? { messages: 2 } : {}), ...(r.ok && r.t0 !== undefined ? { timeline: { ...timeline(events, r.t0, { answerer: 'answerer', offerer: 'offerer' }), 'both open': r.ms as number } } : {}) })
    if (!r.ok) ctx.progress(`(a) connection ${i + 1}: FAILED: ${r.error}`)
  }
  return { mode: 'a', attempts, notes: [] }
}

// ---------------------------------------------------------------- (b), (c) malla

interface Joined {
  readonly page: Page
  readonly id: string
  readonly router: string | null
  readonly stunUrls: string[]
}

/**
 * Opens `url` and joins `room` with the default adapter over `__WatchedPC`. With `watchAnswers`, the page
 * also follows the router's change feed for the room's answers itself (a second EventSource beside its
 * RouterLink's, from the same router) and notes when each answer key first arrived (`__answerSeen`).
 */
async function joinPage(context: BrowserContext, url: string, room: string, options: Record<string, unknown>, watchAnswers = false): Promise<Joined> {
  const page = await openPage(context, url)
  await instrument(page, false)
  if (watchAnswers) {
    await bounded(
      page.evaluate(
        (answers) =>
          new Promise<void>((resolve) => {
            const seen = new Map<string, number>()
            ;(window as unknown as Record<string, unknown>).__answerSeen = seen
            const feed = new EventSource(`/malla/v1/events?types=${answers}`)
            feed.addEventListener('hello', () => resolve())
            feed.addEventListener('change', (e) => {
              const t = performance.timeOrigin + performance.now()
              const change = JSON.parse((e as MessageEvent<string>).data) as { entries: Record<string, { data?: unknown } | null> }
              for (const [key, entry] of Object.entries(change.entries)) if (entry?.data != null && !seen.has(key)) seen.set(key, t)
            })
          }),
        signalTypes(room).answers,
      ),
      10_000,
      "the page's own answers feed",
    )
  }
  const r = await bounded(
    page.evaluate(
      async ({ room, options }) => {
        const now = () => performance.timeOrigin + performance.now()
        const w = window as unknown as Record<string, unknown>
        const m = w.__malla as { joinRoom(room: string, o: unknown): Promise<any>; browserRtcFactory(pc: unknown): unknown }
        const { identityName, ...rest } = options as { identityName?: string }
        const api = w.identityApi as { createIdentity(name: string): Promise<unknown> } | undefined
        const identity = identityName !== undefined && api ? await api.createIdentity(identityName) : undefined
        if (identityName !== undefined && !identity) throw new Error('no identity API in the page')
        // The default adapter, over the page's RTCPeerConnection with listeners that only take notes.
        const joined = await m.joinRoom(room, { ...rest, ...(identity ? { identity } : {}), rtc: m.browserRtcFactory(w.__WatchedPC) })
        const peerTimes: Array<{ id: string; t: number }> = []
        w.__room = joined
        w.__peerTimes = peerTimes
        joined.mesh.on('peer', (p: { id: string }) => peerTimes.push({ id: p.id, t: now() }))
        return { id: joined.id as string, router: (joined.router.name as string | undefined) ?? null, stunUrls: [...joined.router.stunUrls] as string[] }
      },
      { room, options },
    ),
    20_000,
    `joining ${room} at ${url}`,
  )
  return { page, ...r }
}

type PageStats = { connected: number; pendingAnswers: number; openOffers: number }

function meshStats(page: Page): Promise<PageStats> {
  return bounded(
    page.evaluate(() => (window as unknown as { __room: { mesh: { stats(): PageStats } } }).__room.mesh.stats()),
    5000,
    'reading mesh stats',
  )
}

/** Waits in B's page until its replica holds an open offer of A's that it has not used yet; returns its key. */
function waitOffer(b: Page, aId: string, used: readonly string[]): Promise<string | undefined> {
  return bounded(
    b.evaluate(
      async ({ aId, used, timeoutMs }) => {
        type View = { offers: Array<{ key: string; record: 'withdrawn' | { kind: string; peer: string; expiresAt: number } }> }
        const mesh = (window as unknown as { __room: { mesh: { view(): Promise<View> } } }).__room.mesh
        const deadline = Date.now() + timeoutMs
        while (Date.now() < deadline) {
          const view = await mesh.view()
          const open = view.offers.filter((o) => o.record !== 'withdrawn' && o.record.kind === 'offer' && o.record.peer === aId && o.record.expiresAt > Date.now() && !used.includes(o.key))
          if (open.length > 0) return open[open.length - 1]?.key
          await new Promise((r) => setTimeout(r, 10))
        }
        return undefined
      },
      { aId, used: [...used], timeoutMs: OFFER_WAIT_MS },
    ),
    OFFER_WAIT_MS + 5000,
    "waiting for A's offer",
  )
}

/** Waits until `ok` holds for both pages' mesh stats, at most `ms`. */
async function waitStats(pages: readonly Page[], ok: (s: PageStats) => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    const stats = await Promise.all(pages.map(meshStats))
    if (stats.every(ok)) return true
    if (Date.now() > deadline) return false
    await sleep(20)
  }
}

async function meshMode(
  ctx: BenchContext,
  mode: 'b' | 'c' | 'e',
  log: EntryLog,
  a: { context: BrowserContext; url: string; router: string },
  b: { context: BrowserContext; url: string; router: string },
  n: number,
): Promise<ModeResult> {
  // A short room name, as an app's would be: it is in every offer, answer and taken mark.
  const room = roomOf(mode)
  const joinOptions = { connectTimeoutMs: OPEN_TIMEOUT_MS }
  // (e): each page joins with a key of its own (made before it joins, so not timed), and signs and checks.
  const signed = (name: string) => (mode === 'e' ? { identityName: name } : {})
  let A = await joinPage(a.context, a.url, room, { ...joinOptions, target: 0, pool: 1, ...signed('A') }, true)
  let B = await joinPage(b.context, b.url, room, { ...joinOptions, target: 0, pool: 0, ...signed('B') })
  const leave = async (pages: readonly Joined[]) => {
    for (const p of pages) {
      await bounded(p.page.evaluate(() => (window as unknown as { __room: { leave(): Promise<void> } }).__room.leave()), 10_000, 'leaving').catch((e: Error) => notes.push(`(${mode}) ${e.message}`))
      await p.page.close().catch(() => {})
    }
  }
  const notes: string[] = []
  const attempts: Attempt[] = []
  const used: string[] = []
  let rejoins = 0
  const rejoin = async () => {
    await leave([B, A])
    A = await joinPage(a.context, a.url, room, { ...joinOptions, target: 0, pool: 1, ...signed('A') }, true)
    B = await joinPage(b.context, b.url, room, { ...joinOptions, target: 0, pool: 0, ...signed('B') })
    rejoins++
  }
  ctx.progress(`(${mode}) A ${A.id} via ${A.router} (STUN ${A.stunUrls.join(' ') || 'none'}), B ${B.id} via ${B.router} (STUN ${B.stunUrls.join(' ') || 'none'})`)
  try {
    for (let i = 0; i < n; i++) {
      const key = await waitOffer(B.page, A.id, used).catch(() => undefined)
      if (key === undefined) {
        attempts.push({ ok: false, error: `B's replica held no new open offer of A within ${OFFER_WAIT_MS / 1000} s` })
        ctx.progress(`(${mode}) connection ${i + 1}: FAILED: no offer of A`)
        await rejoin()
        continue
      }
      used.push(key)
      await sleep(QUIET_GAP_MS)
      const r = await bounded(
        B.page.evaluate(
          async ({ timeoutMs }) => {
            const now = () => performance.timeOrigin + performance.now()
            type MeshPeer = { id: string; close(): void }
            const w = window as unknown as { __room: { mesh: { on(e: 'peer', f: (p: MeshPeer) => void): () => void; setTarget(n: number): void } }; __lastPeer?: MeshPeer }
            const mesh = w.__room.mesh
            let off: () => void = () => {}
            let timer: ReturnType<typeof setTimeout> | undefined
            const opened = new Promise<{ peer: MeshPeer; t1: number } | undefined>((resolve) => {
              off = mesh.on('peer', (peer) => resolve({ peer, t1: now() }))
              timer = setTimeout(() => resolve(undefined), timeoutMs)
            })
            const t0 = now()
            mesh.setTarget(1)
            const got = await opened
            off()
            clearTimeout(timer)
            if (!got) {
              mesh.setTarget(0)
              return { ok: false as const, t0, error: `B's mesh emitted no 'peer' within ${timeoutMs} ms` }
            }
            w.__lastPeer = got.peer
            return { ok: true as const, t0, ms: got.t1 - t0, remote: got.peer.id }
          },
          { timeoutMs: OPEN_TIMEOUT_MS },
        ),
        OPEN_TIMEOUT_MS + 10_000,
        'B connecting',
      ).catch((e: Error) => ({ ok: false as const, t0: undefined, error: e.message }))
      if (r.ok) {
        // A's side: its 'peer' for B, after t0 (at most until the 10 s bound).
        const aAt = await bounded(
          A.page.evaluate(
            async ({ b, t0, until }) => {
              const times = (window as unknown as { __peerTimes: Array<{ id: string; t: number }> }).__peerTimes
              for (;;) {
                const hit = times.find((x) => x.id === b && x.t >= t0)
                if (hit) return hit.t - t0
                if (performance.timeOrigin + performance.now() > until) return undefined
                await new Promise((r) => setTimeout(r, 5))
              }
            },
            { b: B.id, t0: r.t0, until: r.t0 + OPEN_TIMEOUT_MS },
          ),
          OPEN_TIMEOUT_MS + 5000,
          "A's 'peer'",
        ).catch(() => undefined)
        const events = [...(await takePcLog(A.page, 'A').catch(() => [] as PcEvent[])), ...(await takePcLog(B.page, 'B').catch(() => [] as PcEvent[]))]
        const answerSeen = await bounded(
          A.page.evaluate((prefix) => {
            const seen = (window as unknown as { __answerSeen: Map<string, number> }).__answerSeen
            return [...seen].find(([k]) => k.startsWith(prefix))?.[1]
          }, `${key}>`),
          5000,
          "reading A's answers feed",
        ).catch(() => undefined)
        const steps = {
          ...timeline(events, r.t0, { answerer: 'B', offerer: 'A' }),
          "B: 'peer'": r.ms,
          ...(aAt !== undefined ? { "A: 'peer'": aAt } : {}),
          ...(answerSeen !== undefined ? { [`B's answer reaches A's page (its own feed of ${a.router})`]: answerSeen - r.t0 } : {}),
        }
        attempts.push({ ok: true, ms: r.ms, t0: r.t0, key, timeline: steps, ...(aAt !== undefined ? { other: aAt } : {}) })
        if (r.remote !== A.id) notes.push(`(${mode}) connection ${i + 1}: B connected to ${r.remote}, not A`)
        if (aAt === undefined) notes.push(`(${mode}) connection ${i + 1}: A's mesh emitted no 'peer' for B within ${OPEN_TIMEOUT_MS / 1000} s of t0`)
        // B leaves the connection: first stop looking (or the close would make it answer again), then close.
        await bounded(
          B.page.evaluate(() => {
            const w = window as unknown as { __room: { mesh: { setTarget(n: number): void } }; __lastPeer?: { close(): void } }
            w.__room.mesh.setTarget(0)
            w.__lastPeer?.close()
            w.__lastPeer = undefined
          }),
          5000,
          'B closing',
        )
        if (!(await waitStats([A.page, B.page], (s) => s.connected === 0 && s.pendingAnswers === 0, 5000))) notes.push(`(${mode}) connection ${i + 1}: the pages still held a connection 5 s after B closed it`)
      } else {
        attempts.push({ ok: false, error: r.error, key })
        ctx.progress(`(${mode}) connection ${i + 1}: FAILED: ${r.error}`)
        await bounded(B.page.evaluate(() => (window as unknown as { __room: { mesh: { setTarget(n: number): void } } }).__room.mesh.setTarget(0)), 5000, 'B stopping').catch(() => {})
        // Its attempt ends by the mesh's own connect timeout; a channel that opened late is closed.
        await waitStats([B.page], (s) => s.pendingAnswers === 0, SETTLE_AFTER_FAILURE_MS)
        await bounded(
          B.page.evaluate(() => {
            for (const p of (window as unknown as { __room: { mesh: { peers(): Array<{ close(): void }> } } }).__room.mesh.peers()) p.close()
          }),
          5000,
          'B closing late peers',
        ).catch(() => {})
        await waitStats([A.page, B.page], (s) => s.connected === 0, 5000)
        // A mesh never answers again an offer it failed on, and A keeps (renews) an offer nobody took: both
        // pages leave and join again as new peers, so the next connection starts as the first did.
        await rejoin()
      }
    }
  } finally {
    // Leaving withdraws what is left: A's last open offer and its taken marks not yet retired.
    await leave([B, A])
  }
  if (rejoins > 0) notes.push(`(${mode}) after ${rejoins} failed connection(s), both pages left and joined again as new peers`)

  // Bytes: every write of each connection's offer key and of the answers to it (the offer, the answer,
  // the taken mark; answers and marks are not withdrawn, they expire), once all of them are in.
  const wanted = attempts.filter((x) => x.ok && x.key !== undefined)
  const complete = (key: string) => {
    const ws = log.forOffer(key)
    return ws.some((w) => isOffers(w.type) && !w.withdrawal && (w.data as { taken?: unknown } | undefined)?.taken !== undefined) && ws.some((w) => isAnswers(w.type))
  }
  const all = await log.waitFor(() => wanted.every((x) => complete(x.key as string)), WITHDRAWALS_WAIT_MS)
  if (!all) notes.push(`(${mode}) ${wanted.filter((x) => !complete(x.key as string)).length} connections' answer or taken mark had not reached the routers' feeds ${WITHDRAWALS_WAIT_MS / 1000} s after the pages left; their bytes are without them`)
  const kinds = new Map<string, number[]>()
  for (const x of wanted) {
    const ws = log.forOffer(x.key as string)
    x.bytes = ws.reduce((s, w) => s + w.bytes, 0)
    x.messages = ws.length
    for (const w of ws) {
      const kind =
        isAnswers(w.type)
          ? w.withdrawal
            ? 'answer withdrawn'
            : 'answer'
          : w.withdrawal
            ? 'offer (taken mark) withdrawn'
            : w.data !== null && typeof w.data === 'object' && 'taken' in w.data
              ? 'taken mark'
              : 'offer'
      kinds.set(kind, [...(kinds.get(kind) ?? []), w.bytes])
      const t0 = x.t0 as number
      const steps = (x.timeline ??= {})
      if (kind === 'answer') {
        const atB = w.at.get(b.router)
        const atA = w.at.get(a.router)
        if (atB !== undefined) steps[`B's answer in ${b.router}'s feed`] = atB - t0
        if (atA !== undefined && a.router !== b.router) steps[`B's answer in ${a.router}'s feed`] = atA - t0
      }
      if (kind === 'taken mark') {
        const atA = w.at.get(a.router)
        if (atA !== undefined) steps[`A's taken mark in ${a.router}'s feed`] = atA - t0
      }
    }
  }
  if (kinds.size > 0) {
    notes.push(
      `(${mode}) writes per connection (median bytes each, count over ${wanted.length} connections): ${[...kinds].map(([k, v]) => `${k} ${formatNumber(median(v))} B ×${v.length}`).join(', ')}`,
    )
  }
  const sample = wanted[0] ? log.forOffer(wanted[0].key as string).map((w) => `${w.type} ${JSON.stringify(w.key)}: ${w.bytes} B: ${JSON.stringify(w.data)}`) : []
  return { mode, attempts, notes, sample }
}

// ---------------------------------------------------------------- (d) PeerJS

/** `PeerServer({ host, port, path })` inside namespace `ns`; stopped at cleanup. */
async function startPeerServer(cleanup: Cleanup, dir: string, ns: string, host: string): Promise<ChildProcess> {
  const script = join(dir, 'peer-server.cjs')
  await writeFile(
    script,
    [
      '// PeerJS\'s server (npm "peer"), for bench/signaling.ts: node peer-server.cjs MODULE HOST PORT PATH',
      'const [mod, host, port, path] = process.argv.slice(2)',
      'const { PeerServer } = require(mod)',
      'const server = PeerServer({ host, port: Number(port), path }, () => console.log(`listening ${host}:${port}${path}`))',
      'server.on("error", (e) => console.error(`peer server error: ${e.message}`))',
      'process.on("SIGTERM", () => process.exit(0))',
      '',
    ].join('\n'),
  )
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, PEERJS_SERVER_MODULE, host, String(PEERJS_PORT), PEERJS_PATH], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  cleanup.add('stop the PeerServer', async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  })
  const lines: string[] = []
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (l) => lines.push(l))
  await bounded(
    new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => l.startsWith('listening ') && resolve())
      void exited.then(() => reject(new Error(`the PeerServer exited: ${lines.join(' | ')}`)))
    }),
    15_000,
    'starting the PeerServer',
  )
  return child
}

interface Frame {
  readonly connectionId: string | undefined
  readonly bytes: number
  readonly sent: boolean
}

async function peerjsPage(context: BrowserContext, url: string, id: string, host: string, frames: Frame[]): Promise<Page> {
  const page = await openPage(context, url)
  page.on('websocket', (ws) => {
    const note = (sent: boolean) => (f: { payload: string | Buffer }) => {
      const bytes = typeof f.payload === 'string' ? Buffer.byteLength(f.payload) : f.payload.byteLength
      let connectionId: string | undefined
      try {
        const m = JSON.parse(f.payload.toString()) as { payload?: { connectionId?: unknown } }
        if (typeof m.payload?.connectionId === 'string') connectionId = m.payload.connectionId
      } catch {
        // not JSON: counted for no connection
      }
      frames.push({ connectionId, bytes, sent })
    }
    ws.on('framesent', note(true))
    ws.on('framereceived', note(false))
  })
  await instrument(page, true)
  await page.addScriptTag({ path: PEERJS_CLIENT })
  await bounded(
    page.evaluate(
      async ({ id, host, port, path, timeoutMs }) => {
        const now = () => performance.timeOrigin + performance.now()
        type Conn = { connectionId: string; peer: string; on(e: string, f: (...a: unknown[]) => void): void; close(): void }
        type PeerT = { on(e: string, f: (...a: unknown[]) => void): void; connect(id: string, o: unknown): Conn }
        const w = window as unknown as { Peer: new (id: string, o: unknown) => PeerT; __peer: PeerT; __conns: Map<string, { conn: Conn; open?: number }> }
        // iceServers: [] — PeerJS's default names public STUN/TURN servers.
        const peer = new w.Peer(id, { host, port, path, secure: false, debug: 0, config: { iceServers: [] } })
        w.__peer = peer
        w.__conns = new Map()
        peer.on('connection', (c) => {
          const conn = c as Conn
          const rec: { conn: Conn; open?: number } = { conn }
          w.__conns.set(conn.connectionId, rec)
          conn.on('open', () => (rec.open = now()))
        })
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`PeerJS peer ${id}: no 'open' within ${timeoutMs} ms`)), timeoutMs)
          peer.on('open', () => (clearTimeout(timer), resolve()))
          peer.on('error', (e) => (clearTimeout(timer), reject(new Error(`PeerJS peer ${id}: ${(e as Error).message}`))))
        })
      },
      { id, host, port: PEERJS_PORT, path: PEERJS_PATH, timeoutMs: OPEN_TIMEOUT_MS },
    ),
    OPEN_TIMEOUT_MS + 5000,
    'PeerJS peer open',
  )
  return page
}

async function peerjsMode(ctx: BenchContext, context: BrowserContext, url: string, host: string, n: number): Promise<ModeResult> {
  const frames: Frame[] = []
  const suffix = Date.now().toString(36)
  const aId = `bencha${suffix}`
  const bId = `benchb${suffix}`
  const A = await peerjsPage(context, url, aId, host, frames)
  const B = await peerjsPage(context, url, bId, host, frames)
  const attempts: Attempt[] = []
  const notes: string[] = []
  const ids: Array<{ attempt: Attempt; connectionId: string }> = []
  try {
    for (let i = 0; i < n; i++) {
      await sleep(QUIET_GAP_MS)
      const r = await bounded(
        B.evaluate(
          async ({ aId, timeoutMs }) => {
            const now = () => performance.timeOrigin + performance.now()
            type Conn = { connectionId: string; on(e: string, f: (...a: unknown[]) => void): void; close(): void }
            const w = window as unknown as { __peer: { connect(id: string, o: unknown): Conn }; __out?: Conn }
            const t0 = now()
            const conn = w.__peer.connect(aId, { reliable: true })
            w.__out = conn
            const t1 = await new Promise<number | string>((resolve) => {
              const timer = setTimeout(() => resolve(`not open within ${timeoutMs} ms`), timeoutMs)
              conn.on('open', () => (clearTimeout(timer), resolve(now())))
              conn.on('error', (e) => (clearTimeout(timer), resolve(`error: ${(e as Error).message}`)))
            })
            return typeof t1 === 'number' ? { ok: true as const, ms: t1 - t0, t0, connectionId: conn.connectionId } : { ok: false as const, error: t1, connectionId: conn.connectionId }
          },
          { aId, timeoutMs: OPEN_TIMEOUT_MS },
        ),
        OPEN_TIMEOUT_MS + 5000,
        'PeerJS connect',
      ).catch((e: Error) => ({ ok: false as const, error: e.message, connectionId: undefined }))
      const attempt: Attempt = r.ok ? { ok: true, ms: r.ms, t0: r.t0 } : { ok: false, error: r.error }
      attempts.push(attempt)
      if (!r.ok) ctx.progress(`(d) connection ${i + 1}: FAILED: ${r.error}`)
      if (r.ok && r.connectionId) {
        ids.push({ attempt, connectionId: r.connectionId })
        // A's side open too, before both close it (bounded by the same 10 s).
        const aOpen = await bounded(
          A.evaluate(
            async ({ cid, until }) => {
              const conns = (window as unknown as { __conns: Map<string, { open?: number }> }).__conns
              while (performance.timeOrigin + performance.now() < until) {
                if (conns.get(cid)?.open !== undefined) return true
                await new Promise((r) => setTimeout(r, 5))
              }
              return false
            },
            { cid: r.connectionId, until: r.t0 + OPEN_TIMEOUT_MS },
          ),
          OPEN_TIMEOUT_MS + 5000,
          "A's DataConnection",
        ).catch(() => false)
        if (!aOpen) notes.push(`(d) connection ${i + 1}: A's DataConnection did not open within ${OPEN_TIMEOUT_MS / 1000} s of t0`)
        const events = [...(await takePcLog(A, 'A').catch(() => [] as PcEvent[])), ...(await takePcLog(B, 'B').catch(() => [] as PcEvent[]))]
        attempt.timeline = { ...timeline(events, r.t0, { answerer: 'A', offerer: 'B' }), "B: DataConnection 'open'": r.ms }
      }
      await Promise.all([
        B.evaluate(() => {
          const w = window as unknown as { __out?: { close(): void } }
          w.__out?.close()
          w.__out = undefined
        }),
        A.evaluate((cid) => {
          const conns = (window as unknown as { __conns: Map<string, { conn: { close(): void } }> }).__conns
          if (cid) conns.get(cid)?.conn.close()
        }, r.connectionId),
      ]).catch(() => {})
    }
    // Late frames of the last connection (trickled candidates) arrive meanwhile.
    await sleep(500)
  } finally {
    for (const p of [A, B]) {
      await bounded(p.evaluate(() => (window as unknown as { __peer: { destroy(): void } }).__peer.destroy()), 5000, 'PeerJS destroy').catch(() => {})
      await p.close().catch(() => {})
    }
  }
  const types = new Set<string>()
  for (const { attempt, connectionId } of ids) {
    const mine = frames.filter((f) => f.connectionId === connectionId)
    attempt.bytes = mine.reduce((s, f) => s + f.bytes, 0)
    attempt.messages = mine.length
    attempt.other = mine.filter((f) => f.sent).reduce((s, f) => s + f.bytes, 0)
    types.add(String(mine.length))
  }
  const counted = frames.filter((f) => f.connectionId !== undefined).length
  notes.push(`(d) ${frames.length} WebSocket frames on the two pages' sockets, ${counted} of them naming a connection; frames per connection (sent + received): ${[...types].join(', ')}`)
  return { mode: 'd', attempts, notes }
}

// ---------------------------------------------------------------- run

const SECTIONS: Record<ModeName, string> = {
  a: '(a) floor: 2 peers, 1 page, SDP in JS',
  b: '(b) malla, 1 router',
  c: `(c) malla, 2 routers ${HOPS} hops apart`,
  d: '(d) PeerJS + local PeerServer',
  e: '(e) malla, 1 router, signed (identities on)',
}

interface Lab {
  readonly dir: string
  readonly net: NetnsChain
  readonly daemon0: BenchDaemon
  /** Each router's IPv4 address on its first chain veth. */
  readonly addresses: readonly string[]
  readonly log: EntryLog
  readonly browser0: BrowserContext
  /**
   * Starts the daemons of n1..n3 and waits until all four have discovered their neighbours; follows n3's
   * feed and starts the browser in n3. Until then n0's daemon is a router with no neighbours.
   */
  startChain(): Promise<{ daemons: readonly BenchDaemon[]; browser3: BrowserContext }>
}

/**
 * The namespaces, n0's daemon, its feed and n0's browser; the rest of the chain waits for `startChain`:
 * (a), (b) and (d) run on one router alone, because on this one machine its neighbours' relaying of every
 * write would take the same 2 cores as the pages, which on a mesh run on routers of their own.
 */
async function setUp(ctx: BenchContext, cleanup: Cleanup): Promise<Lab> {
  const net: NetnsChain = await openNetnsChain(HOPS)
  cleanup.add('delete the network namespaces', () => net.close())
  const dir = await cleanup.tempDir('malla-bench-signaling-')
  // A signal or a crash ends the process through bench/lib/netns.ts's exit hook, which kills everything in
  // the namespaces (the browsers, the daemons, the PeerServer); this one, registered after it, then removes
  // the directory (the browsers' profiles, the daemons' data).
  const removeDir = () => rmSync(dir, { recursive: true, force: true })
  process.on('exit', removeDir)
  cleanup.add('drop the exit hook', () => process.off('exit', removeDir))
  ctx.progress(`${net.routers.length} namespaces malla-${net.runId}-n0..n${HOPS}`)
  const addresses = await Promise.all(net.routers.map((r) => chainAddress(r.ns, r.discover[0] as string)))
  const start = (r: NetnsChain['routers'][number]) =>
    startDaemon(['--port', String(NETNS_PORT), '--data', join(dir, r.name), '--name', r.name, ...r.discover.flatMap((d) => ['--discover', d])], {
      netns: r.ns,
      host: '::',
      base: `http://${r.api}:${NETNS_PORT}`,
    }).then((d) => {
      cleanup.add(`stop daemon ${r.name}`, () => d.stop(3000))
      return d
    })
  const first = net.routers[0] as NetnsChain['routers'][number]
  const last = net.routers[HOPS] as NetnsChain['routers'][number]
  const d0 = await start(first)
  ctx.progress(`daemon n0 listening (alone until (c)); chain addresses ${addresses.join(', ')}`)
  const log = new EntryLog()
  cleanup.add('close the change feeds', () => log.close())
  await log.follow(first.name, d0.base)
  const browser0 = await browserIn(cleanup, dir, first.ns, 'n0')
  ctx.progress(`Chromium running in ${first.ns}`)
  const startChain = async () => {
    const daemons = [d0, ...(await Promise.all(net.routers.slice(1).map(start)))]
    await waitDiscoveredCounts(daemons, net.routers.map((r) => r.discover.length), DISCOVERY_TIMEOUT_MS)
    ctx.progress(`daemons n0..n${HOPS} listening and have discovered their neighbours`)
    await log.follow(last.name, (daemons[HOPS] as BenchDaemon).base)
    const browser3 = await browserIn(cleanup, dir, last.ns, `n${HOPS}`)
    ctx.progress(`Chromium running in ${last.ns}`)
    return { daemons, browser3 }
  }
  return { dir, net, daemon0: d0, addresses, log, browser0, startChain }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const quick = ctx.args.includes('--quick')
  const n = quick ? 5 : 50
  const why = await unavailable()
  if (why !== undefined) throw plainError(`signaling: cannot run: ${why}. It needs root (network namespaces), ${CHROMIUM} (Debian's chromium) and a build; no rows were measured.`)

  const cleanup = new Cleanup()
  const results = new Map<ModeName, ModeResult>()
  const errors = new Map<ModeName, string>()
  const env: Record<string, unknown> = {}
  const attempt = async (mode: ModeName, fn: () => Promise<ModeResult>) => {
    const started = Date.now()
    try {
      const r = await fn()
      results.set(mode, r)
      const ok = r.attempts.filter((x) => x.ok)
      ctx.progress(`${SECTIONS[mode]}: ${ok.length}/${r.attempts.length} open, median ${ok.length ? formatNumber(median(ok.map((x) => x.ms as number))) : '-'} ms (${formatNumber((Date.now() - started) / 1000)} s)`)
    } catch (e) {
      errors.set(mode, (e as Error).message)
      ctx.progress(`${SECTIONS[mode]}: FAILED: ${(e as Error).message}`)
    }
  }
  try {
    let lab: Lab
    try {
      lab = await setUp(ctx, cleanup)
    } catch (e) {
      // Other work on this machine may remove namespaces it did not make (a test's leftover guard, `malla
      // lab --clean`); a set-up that fails is undone and tried once more before anything is measured.
      ctx.progress(`set-up failed (${(e as Error).message.split('\n')[0]}); undoing it and trying once more`)
      env.setUpRetried = (e as Error).message.split('\n')[0]
      await cleanup.run()
      await sleep(2000)
      lab = await setUp(ctx, cleanup)
    }
    const { dir, net, daemon0, addresses, log, browser0 } = lab
    const first = net.routers[0] as NetnsChain['routers'][number]
    const last = net.routers[HOPS] as NetnsChain['routers'][number]
    const url0 = `http://${addresses[0]}:${NETNS_PORT}/`
    const url3 = `http://${addresses[HOPS]}:${NETNS_PORT}/`
    const info0 = await getJson<{ stun: { port: number } | null }>(`${daemon0.base}/malla/v1/info`)
    const stun0 = info0.stun ? [`stun:${addresses[0]}:${info0.stun.port}`] : []
    Object.assign(env, { namespaces: net.routers.map((r) => r.ns), chainAddresses: addresses, pageUrls: { n0: url0, [`n${HOPS}`]: url3 }, stunN0: stun0 })

    await attempt('a', async () => {
      const page = await openPage(browser0, url0)
      try {
        return await floorMode(ctx, page, stun0, n)
      } finally {
        await page.close().catch(() => {})
      }
    })
    // (b) and (d), the pair the target compares, take turns in blocks: a slower stretch of this shared
    // machine then falls on both rather than on whichever ran during it.
    const server = await startPeerServer(cleanup, dir, first.ns, addresses[0] as string)
    ctx.progress(`PeerServer listening in ${first.ns} on ${addresses[0]}:${PEERJS_PORT}${PEERJS_PATH}`)
    const blocks = { b: [] as ModeResult[], d: [] as ModeResult[], e: [] as ModeResult[] }
    const one = { context: browser0, url: url0, router: first.name }
    for (let done = 0; done < n; done += BLOCK) {
      const k = Math.min(BLOCK, n - done)
      if (!errors.has('b')) await attempt('b', async () => (blocks.b.push(await meshMode(ctx, 'b', log, one, one, k)), mergeBlocks(blocks.b)))
      if (!errors.has('e')) await attempt('e', async () => (blocks.e.push(await meshMode(ctx, 'e', log, one, one, k)), mergeBlocks(blocks.e)))
      if (!errors.has('d')) await attempt('d', async () => (blocks.d.push(await peerjsMode(ctx, browser0, url0, addresses[0] as string, k)), mergeBlocks(blocks.d)))
    }
    server.kill('SIGTERM')
    await attempt('c', async () => {
      const { browser3 } = await lab.startChain()
      return meshMode(ctx, 'c', log, { context: browser0, url: url0, router: first.name }, { context: browser3, url: url3, router: last.name }, n)
    })
  } finally {
    await cleanup.run()
  }
  return report(n, quick, results, errors, env)
}

function report(n: number, quick: boolean, results: Map<ModeName, ModeResult>, errors: Map<ModeName, string>, env: Record<string, unknown>): BenchResult {
  const ok = (m: ModeName) => (results.get(m)?.attempts ?? []).filter((x) => x.ok)
  const times = (m: ModeName) => ok(m).map((x) => x.ms as number)
  const bytes = (m: ModeName) => ok(m).flatMap((x) => (x.bytes === undefined ? [] : [x.bytes]))
  const floorTimes = times('a')
  const floorBytes = bytes('a')
  const floorName = 'floor (a)'
  const rows: BenchRow[] = []
  for (const m of ['a', 'b', 'c', 'd', 'e'] as const) {
    const r = results.get(m)
    if (!r) continue
    const section = SECTIONS[m]
    const t = times(m)
    const by = bytes(m)
    const isFloor = m === 'a'
    rows.push(row({ section, name: `connections open within ${OPEN_TIMEOUT_MS / 1000} s`, n: r.attempts.length, unit: '%', better: 'higher', value: (100 * t.length) / r.attempts.length, target: SUCCESS_TARGET }))
    if (t.length > 0) {
      const base = !isFloor && floorTimes.length > 0 ? { name: floorName, value: summarize(floorTimes) } : undefined
      const target = m === 'b' && floorTimes.length > 0 ? 1.5 * median(floorTimes) + 50 : undefined
      rows.push(row({ section, name: 'time to open, t1 - t0 (median)', unit: 'ms', value: summarize(t), baseline: base, target }))
      rows.push(row({ section, name: 'time to open, p95', unit: 'ms', value: percentile(t, 95), baseline: !isFloor && floorTimes.length > 0 ? { name: floorName, value: percentile(floorTimes, 95) } : undefined }))
      if (m === 'b' && times('d').length > 0) {
        rows.push(row({ section, name: 'time to open vs PeerJS (median)', unit: 'ms', value: summarize(t), baseline: { name: 'PeerJS (d)', value: summarize(times('d')) }, target: median(times('d')) }))
      }
      if (m === 'e' && times('b').length > 0) {
        // What identity costs a connection: signing, checking and the longer records, against (b) in the same run.
        rows.push(row({ section, name: 'time to open, signed vs unsigned (b) (median)', unit: 'ms', value: summarize(t), baseline: { name: 'unsigned (b)', value: summarize(times('b')) }, target: median(times('b')) + 20 }))
      }
      if ((m === 'b' || m === 'c' || m === 'e') && ok(m).some((x) => x.other !== undefined)) {
        rows.push(row({ section, name: "time to A's 'peer' (median)", unit: 'ms', value: summarize(ok(m).flatMap((x) => (x.other === undefined ? [] : [x.other]))) }))
      }
    }
    if (by.length > 0) {
      const what = m === 'a' ? 'signaling bytes: offer + answer SDP' : m === 'd' ? 'signaling bytes: WS frames sent + received, both pages' : 'signaling bytes: shared-state writes'
      rows.push(row({ section, name: what, unit: 'B', value: summarize(by), baseline: m === 'e' && bytes('b').length > 0 ? { name: 'unsigned (b)', value: summarize(bytes('b')) } : !isFloor && floorBytes.length > 0 ? { name: floorName, value: summarize(floorBytes) } : undefined, target: m === 'b' ? BYTES_TARGET : undefined }))
      if (m === 'd') {
        const sent = ok('d').flatMap((x) => (x.other === undefined ? [] : [x.other]))
        if (sent.length > 0) rows.push(row({ section, name: 'signaling bytes: WS frames sent (each message once)', unit: 'B', value: summarize(sent), baseline: floorBytes.length > 0 ? { name: floorName, value: summarize(floorBytes) } : undefined }))
      }
    }
  }

  const notes: string[] = [
    `Network: ${HOPS + 1} network namespaces n0..n${HOPS} in a chain (bench/lib/netns.ts openNetnsChain, \`malla lab --netns\`'s code): veth pairs with IPv6 link-local and an IPv4 /30 each, a default route via each namespace's first chain veth, IPv4 forwarding and routes between all links. One daemon per namespace (\`malla peer --host :: --port ${NETNS_PORT}\`, built CLI, default timers, --discover on its chain veths: neighbours found by ping ff02::1), plus its STUN responder on a free UDP port. Order: (a), then (b) and (d) in turns of ${BLOCK} connections each (so that a slower stretch of this shared machine falls on both), all with n0's daemon alone (n1..n${HOPS} not started yet: on this 2-core machine their relaying of every write would compete with the pages, which on a mesh runs on other routers), then n1..n${HOPS} start, all four discover their neighbours, and (c) runs. This process reaches each daemon's API and change feed only through one more veth per namespace.`,
    `Browsers: Debian's ${CHROMIUM} via playwright-core, headless, fresh profile, flags ${CHROMIUM_FLAGS.join(' ')}, each run inside a namespace (\`ip netns exec\`): one in n0 (pages of (a), (b), (d) and A of (c)), one in n${HOPS} (B of (c)). Chromium gathers candidates only on the default-route interface, i.e. the chain veth. Pages load the router's http://<router's chain address>:${NETNS_PORT}${PAGE_PATH} (not a secure context), which opens nothing until its form is used, so a tab runs only the benchmark's code (the router's / is its live table view, which keeps a change feed open, and Chromium allows a browser 6 connections per host for all its tabs).`,
    `Every connection: a pause of ${QUIET_GAP_MS} ms before t0; times are taken inside the page (performance.timeOrigin + performance.now(), the same wall clock in every page and process of the machine); a connection not open ${OPEN_TIMEOUT_MS / 1000} s after t0 is a failure and the run goes on. Rows: success rate, median (with p10..p90 beside it) and p95 of t1 - t0 over the connections that opened, and signaling bytes per connection (median); ratios are to the floor (a) measured in the same run.`,
    `(a) floor: one page in n0's browser imports /malla.js and makes both peers with browserRtcFactory(the page's RTCPeerConnection, with note-taking listeners only: see Timelines, {stunUrls: [the n0 router's STUN URL, as joinRoom passes it], connectTimeoutMs: ${OPEN_TIMEOUT_MS}}): the same adapter and gather policy as (b)/(c) (no trickle; a description goes out 30 ms after its last candidate once it has a routable one, here the srflx candidate from the router's STUN responder). The offer is made before t0 (as a published pool offer is); t0 = answerer.acceptOffer(offer), then offerer.acceptAnswer(answer); t1 = the later of the two sides' 'open'. Bytes = offer.length + answer.length (the two SDP strings, ASCII).`,
    `(b) one router: page A joins a fresh room through n0 with {target: 0, pool: 1, connectTimeoutMs: ${OPEN_TIMEOUT_MS}} (it only offers), page B (a second tab of n0's browser) with {target: 0, pool: 0, connectTimeoutMs: ${OPEN_TIMEOUT_MS}}; both joinRoom with the default adapter (over the same note-taking RTCPeerConnection), so both use the router's STUN. Per connection: B polls its replica (Mesh.view(), every 10 ms) until it holds an open offer of A's that it has not used; then t0 = B.mesh.setTarget(1), t1 = B's mesh emits 'peer' (A's 'peer' is recorded too, as "time to A's 'peer'"). Then B calls setTarget(0) and closes the MeshPeer, and both pages' meshes report no connection and no pending answer before the next one. Mesh.setTarget existed; Mesh.view() was added (read-only) for the wait.`,
    `(e) as (b), in turns with (b) and (d), each page joining with a key of its own (an Ed25519 OpenPGP key made in the page by createIdentity, injected as a script: /malla.js has no OpenPGP in it; made before the page joins, so not timed): every offer, answer and taken mark is signed and checked (§18.2), each side checks the other's DTLS certificate once open, and only signed records count. The row "signed vs unsigned" is (e)'s median against (b)'s of the same run; its target is (b) + 20 ms.`,
    `(c) as (b), with A's page served by n0 and B's by n${HOPS} (in n${HOPS}'s browser, its own router's STUN): the answer and the taken mark cross ${HOPS} router hops (pushes between the daemons over the veths) and the data channel runs over the routed path between n0's and n${HOPS}'s chain addresses.`,
    `Bytes of (b)/(c): every distinct write (key, author, clock) of the room's offers and answers (room-bench_2d<mode>-_offers, -_answers) that the change feeds of n0 and n${HOPS} delivered, counted as UTF-8 bytes of \`"key":{entry}\` (the entry as it stands in a table or a push body, with data, author, bleachTTL and clock); per connection, the writes of the offer key B answered and of the answers to it: the open offer, B's answer, A's taken mark, B's withdrawal of its answer (on open) and the withdrawal of the taken mark (${OPEN_TIMEOUT_MS / 1000} s after, by A's housekeeping, or when A leaves at the end of the mode; both write the same entry). Each write counted once, not once per link it crosses.`,
    `(d) PeerJS ${version('peerjs')} with a PeerServer (npm peer ${version('peer')}, PeerServer({host: n0's chain address, port: ${PEERJS_PORT}, path: '${PEERJS_PATH}'})) run by a small script inside n0's namespace; two tabs of n0's browser on n0's page load node_modules/peerjs/dist/peerjs.min.js (page.addScriptTag) and make new Peer(id, {host, port, path, config: {iceServers: []}}) (PeerJS's default config names public STUN/TURN servers), each waiting for 'open'. t0 = B.connect(A.id, {reliable: true}), t1 = that DataConnection's 'open' on B; A's side is waited for (bounded) and both close it. PeerJS trickles its candidates (host candidates only, behind mDNS names, resolved within the browser). Bytes: WebSocket frame payloads (Playwright page 'websocket' framesent/framereceived) of both pages whose JSON names that connection's connectionId (OFFER, ANSWER, CANDIDATE; heartbeats name none): "sent + received" counts each relayed message twice (sent by one page, received by the other), "sent" once.`,
    `Timelines: in every page, the RTCPeerConnection the adapter (or PeerJS) makes is the page's own with listeners added, which note when a remote description was applied and when gathering, ICE and the connection changed state (\`instrument\`: nothing else differs); the note per mode gives, for the connection that got the remote offer after t0 (the answerer) and the one that got the answer, the median ms after t0 of each step, and for (b)/(c) when B's answer and A's taken mark reached the routers' change feeds (this process's clock, the same wall clock as the pages').`,
    `Targets: every connection opens; (b) median < 1.5 × (a) median + 50 ms; (b) median below (d)'s; (b) under ${BYTES_TARGET} B of shared-state writes per connection.`,
  ]
  if (typeof env.setUpRetried === 'string') notes.push(`The first set-up failed (${env.setUpRetried}); it was undone and made again before anything was measured.`)
  if (quick) notes.push(`--quick: ${n} connections per mode instead of 50.`)
  for (const m of ['a', 'b', 'c', 'd', 'e'] as const) {
    const e = errors.get(m)
    if (e) notes.push(`${SECTIONS[m]}: FAILED before it finished: ${e}`)
    const r = results.get(m)
    if (!r) continue
    const failed = r.attempts.filter((x) => !x.ok)
    if (failed.length > 0) notes.push(`${SECTIONS[m]}: ${failed.length} of ${r.attempts.length} connections failed: ${[...new Set(failed.map((x) => x.error))].join('; ')}`)
    const steps = new Map<string, number[]>()
    for (const x of r.attempts) for (const [k, v] of Object.entries(x.ok ? (x.timeline ?? {}) : {})) steps.set(k, [...(steps.get(k) ?? []), v])
    if (steps.size > 0) {
      const line = [...steps].map(([k, v]) => [k, median(v), v.length] as const).sort((x, y) => x[1] - y[1])
      notes.push(`${SECTIONS[m]}: timeline, median ms after t0 (over the connections that opened): ${line.map(([k, v, c]) => `${k} ${formatNumber(v)}${c < ok(m).length ? ` (${c} of ${ok(m).length})` : ''}`).join('; ')}`)
    }
    notes.push(...r.notes)
  }
  const raw = (m: ModeName) => {
    const r = results.get(m)
    if (!r) return { error: errors.get(m) }
    return {
      attempts: r.attempts.map((x) => ({
        ok: x.ok,
        ...(x.ms !== undefined ? { ms: Math.round(x.ms * 10) / 10 } : {}),
        ...(x.bytes !== undefined ? { bytes: x.bytes } : {}),
        ...(x.messages !== undefined ? { messages: x.messages } : {}),
        ...(x.other !== undefined ? { [m === 'd' ? 'sentBytes' : 'aPeerMs']: Math.round(x.other * 10) / 10 } : {}),
        ...(x.key !== undefined ? { offer: x.key } : {}),
        ...(x.timeline ? { timelineMs: Object.fromEntries(Object.entries(x.timeline).map(([k, v]) => [k, Math.round(v * 10) / 10])) } : {}),
        ...(x.error !== undefined ? { error: x.error } : {}),
      })),
      ...(r.sample ? { sampleWrites: r.sample } : {}),
    }
  }
  return {
    title: 'time and bytes to open a WebRTC data channel between two Chromium pages: malla over shared-state vs PeerJS, against the floor',
    rows,
    notes,
    params: { connections: n, openTimeoutMs: OPEN_TIMEOUT_MS, quietGapMs: QUIET_GAP_MS, hops: HOPS, ...env, modes: { a: raw('a'), b: raw('b'), c: raw('c'), d: raw('d'), e: raw('e') } },
  }
}
