/**
 * The web app as people get it, in one run:
 * - its size as a browser fetches it (gzip): what a first visit loads, and every file it can ever load;
 * - time from opening the app to "connected to everyone": the third of 3 people on 2 routers, from navigation
 *   start to direct connections with both others, against the library alone (`joinRoom` from `/malla.js` in
 *   the router's bare `/debug/room` page with a key made there, same room size, same routers) in the same run;
 * - file transfer between two pages behind different routers (the app's `FileSharing`: offer, accept,
 *   SHA-256 on both sides, Blob parts) against the raw data channel it runs on: the same connection's file
 *   channel, frames of 64 KiB, the largest a file frame may be (the app sends 32 KiB), nothing else (it may keep
 *   more queued: 1 MiB, the library default); and
 *   against the same raw loop kept within the app's receive window with both pages hashing every frame, which
 *   splits the gap into what the SHA-256s cost and what the rest of the app does. Twice: on a link limited as a
 *   mesh's radios are (100 Mbit/s unless `--link-mbit` says otherwise; the targets are there), and with no limit,
 *   where this machine's 2 cores, shared by both ends, set the pace (what the app's work costs in CPU);
 * - chat round trips (a line written by A, echoed by B, seen by A) while idle and all through a 200 MB transfer,
 *   on the link and with no limit;
 * - the receiving page's JS heap growth during a 200 MB transfer on the link, with no chat going on (Chromium's
 *   `Runtime.getHeapUsage`).
 *
 * Set-up: 2 malla daemons with their defaults, each in its own network namespace (bench/lib/netns.ts); one
 * Debian Chromium per namespace (headless), each person in a fresh browser context of its own, the app opened
 * from the router's address as a person on its LAN would. Every page is in the app's default room settings.
 *
 * `npm run bench -- webapp [--quick] [--link-mbit N]`; needs root (namespaces, tc), /usr/bin/chromium and a build.
 */
import { existsSync } from 'node:fs'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { WEB_BUDGET, webSize } from '../scripts/web-size.js'
import { FILE_TRANSFER_DEFAULTS } from '../src/files/file-transfer.js'
import { identityApiScript } from './lib/identity-api-script.js'
import { Cleanup } from './lib/cleanup.js'
import { CLI_PATH, sleep } from './lib/daemon.js'
import { limitLinks, netnsUnavailable, startChain, udpCounters, type LinkLimit } from './lib/netns.js'
import { cpuByNamespace, cpuSpent } from './lib/ns-cpu.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { percentile, summarize } from './lib/stats.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const WEB = fileURLToPath(new URL('../dist/web/', import.meta.url))
const ROOM = 'bench'
const MB = 1024 * 1024
const TARGETS = { connectMs: 2000, throughputRatio: 0.8, chatRatio: 2, heapMB: 64 } as const
/** Chat round trips during one transfer, at most: a 200 MB transfer on a 2 Mbit/s link would give over 10,000. */
const MAX_BUSY_TRIPS = 2000
/** Fewer round trips than this make no p95 worth the name. */
const MIN_TRIPS = 20

type Win = {
  mallaSession: {
    room: { id: string; mesh: { peers(): Array<{ id: string; fileChannel: RawChannel }> }; connect(id: string): Promise<{ id: string; fileChannel: RawChannel }>; replica: ReplicaLike; tables: Map<string, string> }
    chat: { say(text: string): Promise<void> }
    files: { send(to: string, file: Blob & { name?: string }): Promise<void>; accept(key: string): void; dismiss(key: string): void; transfers: { value: Array<{ key: string; direction: string; state: string; size: number }>; subscribe(f: (v: Array<{ key: string; direction: string; state: string }>) => void): () => void } }
  }
}
/** Set in the sender's page while one of the bench's transfers runs: chat round trips "during a transfer" stop with it. */
type Sending = { __benchSending?: boolean }
type RawChannel = { send(d: string | Uint8Array): void; bufferedAmount: number; on(e: string, l: (...a: unknown[]) => void): () => void }
type LibraryHash = { sha256Stream(): Promise<{ update(b: Uint8Array): void; hex(): string }> }
type ReplicaLike = { on(e: 'change', l: (e: { type: string; keys: string[]; table: Map<string, { author: string; data: { x?: string } }> }) => void): () => void }

async function unavailable(): Promise<string | undefined> {
  const why = await netnsUnavailable()
  if (why !== undefined) return why
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (Debian's chromium package)`
  if (!existsSync(CLI_PATH) || !existsSync(join(WEB, 'index.html'))) return 'the build is missing: run `npm run build` first'
  return undefined
}

/** A Chromium whose network is namespace `ns`; each person gets a context of their own in it. */
async function browserIn(cleanup: Cleanup, dir: string, ns: string): Promise<Browser> {
  const wrapper = join(dir, `chromium-in-${ns}`)
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec '${ns}' ${CHROMIUM} "$@"\n`)
  await chmod(wrapper, 0o755)
  const browser = await chromium.launch({ executablePath: wrapper, headless: true, args: CHROMIUM_FLAGS, timeout: 30_000 })
  cleanup.add(`close the browser in ${ns}`, () => browser.close())
  return browser
}

/** A person: a fresh context (its own storage) with a name already chosen, so the app joins at once. */
async function person(browser: Browser, name: string): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  await context.addInitScript({ content: `globalThis.__name = globalThis.__name || ((f) => f); try { localStorage.setItem('malla.name', ${JSON.stringify(name)}) } catch {}` })
  return context
}

async function openApp(context: BrowserContext, url: string): Promise<{ page: Page; id: string }> {
  const page = await context.newPage()
  page.on('pageerror', (e) => process.stderr.write(`page ${url}: uncaught ${e.message}\n`))
  await page.goto(`${url}/?room=${ROOM}`, { timeout: 15_000 })
  await page.waitForFunction(() => (globalThis as unknown as Partial<Win>).mallaSession !== undefined, undefined, { timeout: 30_000, polling: 20 })
  return { page, id: await page.evaluate(() => (globalThis as unknown as Win).mallaSession.room.id) }
}

/** Milliseconds from the page's navigation start until it holds direct connections to every id in `ids`. */
async function connectedAfter(page: Page, ids: readonly string[], timeoutMs = 30_000): Promise<number> {
  const handle = await page.waitForFunction(
    (ids) => {
      const w = globalThis as unknown as Partial<Win> & { __malla?: { mesh: { peers(): Array<{ id: string }> } } }
      const peers = w.mallaSession?.room.mesh.peers() ?? w.__malla?.mesh.peers() ?? []
      return ids.every((id) => peers.some((p) => p.id === id)) ? performance.now() : false
    },
    ids,
    { timeout: timeoutMs, polling: 10 },
  )
  return (await handle.jsonValue()) as number
}

/** A page's connections and mesh counters, for a failure's message. */
function meshState(page: Page): Promise<string> {
  return page
    .evaluate(async () => {
      const w = globalThis as unknown as { mallaSession?: { room: unknown }; __malla?: unknown }
      type View = { offers: Array<{ key: string; record: 'withdrawn' | { kind: string; peer: string } }>; answers: Array<{ key: string; record: { peer: string; to: string } }> }
      const room = (w.mallaSession?.room ?? w.__malla) as { id: string; mesh: { peers(): Array<{ id: string }>; stats(): unknown; view(): Promise<View> }; presence: { view(): Promise<Array<{ id: string; reachable: boolean; links: string[] }>> } } | undefined
      if (!room) return 'no room'
      const view = await room.mesh.view()
      const offers = view.offers.map((o) => (o.record === 'withdrawn' ? `${o.key}:withdrawn` : `${o.key}:${o.record.kind}`))
      const answers = view.answers.map((a) => a.key)
      const presence = (await room.presence.view()).map((p) => `${p.id}${p.reachable ? '' : '(away)'}[${p.links.join(',')}]`)
      return JSON.stringify({ id: room.id, peers: room.mesh.peers().map((p) => p.id), stats: room.mesh.stats(), offers, answers, presence })
    })
    .catch((e: Error) => `unreadable (${e.message})`)
}

/** The library alone in the router's bare page: the baseline for the app's time to connect. */
async function openLibrary(context: BrowserContext, url: string): Promise<Page> {
  // The app's pages answer only signed offers: the library page makes a key too, with openpgp.js loaded with the
  // page (the app loads it when it joins).
  await context.addInitScript({ content: await identityApiScript() })
  const page = await context.newPage()
  await page.goto(`${url}/debug/room`, { timeout: 15_000 })
  await page.evaluate(async (room) => {
    const m = await import(`${location.origin}/malla.js`)
    const identity = await (globalThis as unknown as { identityApi: { createIdentity(name: string): Promise<unknown> } }).identityApi.createIdentity('C')
    ;(globalThis as unknown as { __malla: unknown }).__malla = await m.joinRoom(room, { tables: ['chat'], identity })
  }, ROOM)
  return page
}

/** Waits until each page holds exactly the connections to the others listed (the third person has gone). */
async function settle(pages: ReadonlyArray<{ page: Page; others: readonly string[] }>): Promise<void> {
  await Promise.all(
    pages.map(({ page, others }) =>
      page.waitForFunction((ids) => {
        const peers = (globalThis as unknown as Win).mallaSession.room.mesh.peers().map((p) => p.id)
        return peers.length === ids.length && ids.every((id) => peers.includes(id))
      }, others, { timeout: 30_000, polling: 50 }),
    ),
  )
  // Their presence rewritten without the one who left, and their offers replaced: the next person finds the
  // room as a newcomer usually does.
  await Promise.all(
    pages.map(({ page, others }) =>
      page.waitForFunction(
        (n) => (globalThis as unknown as { mallaSession: { people: { list: { value: Array<{ present: boolean }> } } } }).mallaSession.people.list.value.filter((p) => p.present).length === n,
        others.length + 1,
        { timeout: 30_000, polling: 50 },
      ),
    ),
  )
  await sleep(1500)
}

/** Waits until `page`'s people list has `id` listing at least `links` connections. */
async function presenceOf(page: Page, id: string, links: number, timeoutMs = 15_000): Promise<void> {
  await page.waitForFunction(
    ({ id, links }) => {
      const p = (globalThis as unknown as { mallaSession: { people: { list: { value: Array<{ id: string; links: string[] }> } } } }).mallaSession.people.list.value.find((x) => x.id === id)
      return p !== undefined && p.links.length >= links
    },
    { id, links },
    { timeout: timeoutMs, polling: 50 },
  )
}

async function dismissAll(pages: readonly Page[]): Promise<void> {
  for (const page of pages) {
    await page.evaluate(() => {
      const files = (globalThis as unknown as Win).mallaSession.files
      for (const t of files.transfers.value) files.dismiss(t.key)
    })
  }
}

/** B accepts every file offered to it, as a person clicking Accept would. */
async function autoAccept(page: Page): Promise<void> {
  await page.evaluate(() => {
    const files = (globalThis as unknown as Win).mallaSession.files
    files.transfers.subscribe((list) => {
      for (const t of list) if (t.direction === 'in' && t.state === 'offered') queueMicrotask(() => files.accept(t.key))
    })
  })
}

/** Sends `mb` MB with the app's file sharing from `page` to `to`; resolves with MB/s, sender's offer to its done. */
function sendFile(page: Page, to: string, mb: number): Promise<number> {
  return page.evaluate(
    async ({ to, mb }) => {
      const files = (globalThis as unknown as Win).mallaSession.files
      const block = new Uint8Array(1024 * 1024)
      for (let i = 0; i < block.length; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536))
      const file = new File(Array.from({ length: mb }, () => block), 'bench.bin')
      const before = new Set(files.transfers.value.map((t) => t.key))
      const started = performance.now()
      const w = globalThis as unknown as Sending
      w.__benchSending = true
      try {
        void files.send(to, file)
        await new Promise<void>((resolve, reject) => {
          const off = files.transfers.subscribe((list) => {
            const mine = list.find((t) => !before.has(t.key) && t.direction === 'out')
            if (mine?.state === 'done') queueMicrotask(() => (off(), resolve()))
            else if (mine && (mine.state === 'failed' || mine.state === 'cancelled')) queueMicrotask(() => (off(), reject(new Error(`transfer ${mine.state}`))))
          })
        })
      } finally {
        w.__benchSending = false
      }
      return (mb * 1024 * 1024) / ((performance.now() - started) / 1000) / 1e6
    },
    { to, mb },
  )
}

/** What the raw channel does besides sending: nothing, or also the app's receive window and its SHA-256s. */
interface RawChecks {
  /** The receiver acks each half of this many bytes it has taken, and the sender keeps no more unacked (§16). */
  readonly window?: number
  /** Both sides hash every frame's payload with the library's `sha256Stream`, as a transfer does; B's hash must match A's. */
  readonly hash?: boolean
}

/**
 * The raw channel: the same connection's file channel, 64 KiB frames (the largest a file frame may be, §16: the
 * channel at its best), sending while under 1 MiB queued and
 * waiting for `drain` (the app's flow control), until the receiver says it has every byte. With `checks`, it
 * also does what the app's transfers must: keep within the receiver's window, and hash every byte on both sides.
 */
async function sendRaw(sender: Page, receiver: Page, to: string, from: string, mb: number, checks: RawChecks = {}): Promise<number> {
  const total = mb * MB
  await receiver.evaluate(
    async ({ from, total, checks }) => {
      const peer = (globalThis as unknown as Win).mallaSession.room.mesh.peers().find((p) => p.id === from)
      if (!peer) throw new Error('no connection to the sender')
      const hash = checks.hash ? await ((await import(`${location.origin}/malla.js`)) as LibraryHash).sha256Stream() : undefined
      let got = 0
      let acked = 0
      const off = peer.fileChannel.on('message', (data) => {
        if (typeof data === 'string') return
        const frame = data as Uint8Array
        got += frame.byteLength
        hash?.update(frame.subarray(4))
        if (checks.window && got - acked >= checks.window / 2) peer.fileChannel.send(`raw-ack:${(acked = got)}`)
        if (got >= total) {
          off()
          peer.fileChannel.send(`raw-done:${hash?.hex() ?? ''}`)
        }
      })
    },
    { from, total, checks },
  )
  return sender.evaluate(
    async ({ to, total, checks }) => {
      const peer = await (globalThis as unknown as Win).mallaSession.room.connect(to)
      const hash = checks.hash ? await ((await import(`${location.origin}/malla.js`)) as LibraryHash).sha256Stream() : undefined
      const ch = peer.fileChannel
      const frame = new Uint8Array(64 * 1024)
      crypto.getRandomValues(frame.subarray(0, 65536))
      let acked = 0
      let wake: (() => void) | undefined
      const done = new Promise<string>((resolve) => {
        const off = ch.on('message', (d) => {
          if (typeof d !== 'string') return
          if (d.startsWith('raw-ack:')) {
            acked = Number(d.slice(8))
            wake?.()
          } else if (d.startsWith('raw-done:')) {
            off()
            resolve(d.slice(9))
          }
        })
      })
      const started = performance.now()
      const w = globalThis as unknown as Sending
      w.__benchSending = true
      let theirs: string
      try {
        for (let sent = 0; sent < total; ) {
          if (ch.bufferedAmount > 1024 * 1024) {
            await new Promise<void>((resolve) => {
              const off = ch.on('drain', () => (off(), resolve()))
            })
            continue
          }
          if (checks.window && sent > acked && sent - acked + frame.byteLength > checks.window) {
            await new Promise<void>((resolve) => (wake = resolve))
            continue
          }
          // Nobody's transfer has id 0xffffffff: the receiver's file transfers drop these frames, as they should.
          frame.set([255, 255, 255, 255])
          ch.send(frame)
          hash?.update(frame.subarray(4))
          sent += frame.byteLength
        }
        theirs = await done
      } finally {
        w.__benchSending = false
      }
      if (hash && theirs !== hash.hex()) throw new Error(`the receiver's SHA-256 ${theirs} is not the sender's`)
      return total / ((performance.now() - started) / 1000) / 1e6
    },
    { to, total, checks },
  )
}

/**
 * MB/s of the library's streaming SHA-256 (`sha256Stream`, what a transfer hashes with) in `page`, fed `mb` MB in
 * 64 KiB frames, with nothing else running: what the check costs each side, per byte.
 */
function hashRate(page: Page, mb: number): Promise<number> {
  return page.evaluate(async (mb) => {
    const m = (await import(`${location.origin}/malla.js`)) as LibraryHash
    const frame = new Uint8Array(65532)
    crypto.getRandomValues(frame)
    const hash = await m.sha256Stream()
    const frames = Math.ceil((mb * 1024 * 1024) / frame.byteLength)
    const started = performance.now()
    for (let i = 0; i < frames; i++) hash.update(frame)
    hash.hex()
    return (frames * frame.byteLength) / ((performance.now() - started) / 1000) / 1e6
  }, mb)
}

/** B answers every chat line `ping-N` from A with `pong-N`. */
async function echoChat(page: Page, from: string): Promise<void> {
  await page.evaluate((from) => {
    const s = (globalThis as unknown as Win).mallaSession
    const type = s.room.tables.get('chat') as string
    s.room.replica.on('change', (e) => {
      if (e.type !== type) return
      for (const k of e.keys) {
        const entry = e.table.get(k)
        const text = entry?.data?.x
        if (entry?.author === from && typeof text === 'string' && text.startsWith('ping-')) void s.chat.say(`pong-${text.slice(5)}`)
      }
    })
  }, from)
}

/**
 * Chat round trips from A, one every `gapMs`: ms from writing `ping-N` to seeing B's `pong-N`. `n` of them, or with
 * `whileSending`, as many as fit (up to `n`) while A's page sends a file: only those that ended before it had sent it.
 */
function chatRoundTrips(page: Page, to: string, n: number, gapMs: number, label: string, whileSending = false): Promise<number[]> {
  return page.evaluate(
    async ({ to, n, gapMs, label, whileSending, MIN_TRIPS }) => {
      const s = (globalThis as unknown as Win).mallaSession
      const sending = () => (globalThis as unknown as Sending).__benchSending === true
      const type = s.room.tables.get('chat') as string
      const out: number[] = []
      for (let i = 0; i < n && (!whileSending || sending()); i++) {
        const tag = `${label}${i}`
        const seen = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => (off(), reject(new Error(`no pong-${tag} within 20 s`))), 20_000)
          const off = s.room.replica.on('change', (e) => {
            if (e.type !== type) return
            if (e.keys.some((k) => e.table.get(k)?.author === to && e.table.get(k)?.data?.x === `pong-${tag}`)) (clearTimeout(timer), off(), resolve())
          })
        })
        const started = performance.now()
        await s.chat.say(`ping-${tag}`)
        await seen
        if (whileSending && !sending()) break
        out.push(performance.now() - started)
        await new Promise((r) => setTimeout(r, gapMs))
      }
      if (out.length < MIN_TRIPS) throw new Error(`${label}: only ${out.length} chat round trips${whileSending ? ' while the file was sent' : ''}`)
      return out
    },
    { to, n, gapMs, label, whileSending, MIN_TRIPS },
  )
}

/** The JS heap of a page while something runs: used size after a forced GC at `start`, and its peak until `stop`. */
interface HeapWatch {
  start(): Promise<void>
  stop(): { before: number; peak: number }
}

async function heapWatch(page: Page): Promise<HeapWatch> {
  const cdp = await page.context().newCDPSession(page)
  const used = async () => ((await cdp.send('Runtime.getHeapUsage')) as { usedSize: number }).usedSize
  let before = 0
  let peak = 0
  let sampler: ReturnType<typeof setInterval> | undefined
  return {
    async start() {
      await cdp.send('HeapProfiler.collectGarbage')
      before = peak = await used()
      sampler = setInterval(() => void used().then((u) => (peak = Math.max(peak, u)), () => {}), 200)
    },
    stop() {
      clearInterval(sampler)
      return { before, peak }
    },
  }
}

/** One kind of transfer's runs: MB/s, CPU per MB (both namespaces) and B's dropped datagrams per 1,000. */
interface TransferRuns {
  readonly rate: number[]
  readonly cpuPerMB: number[]
  readonly dropsPerMille: number[]
}

/** raw: the bare channel; checked: the same with the app's window and both SHA-256s; app: the app's transfers. */
type Throughput = Record<'raw' | 'checked' | 'app', TransferRuns>

/** Chat round trips (ms) while idle, during the app's transfer and during the raw channel's. */
interface ChatRuns {
  readonly idle: number[]
  readonly busy: number[]
  readonly busyRaw?: number[]
  /** The app's transfer's rate, with chat going on. */
  readonly appMBps: number
}

/** `--link-mbit N`: the mesh link's rate; 100 unless said. */
function linkMbit(args: readonly string[]): number {
  const at = args.indexOf('--link-mbit')
  if (at === -1) return 100
  const v = Number(args[at + 1])
  if (!Number.isFinite(v) || v <= 0 || v > 10_000) throw new Error(`webapp: --link-mbit takes a rate in Mbit/s, above 0 and at most 10000 (got ${JSON.stringify(args[at + 1])})`)
  return v
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const quick = ctx.args.includes('--quick')
  const link: LinkLimit = { mbit: linkMbit(ctx.args), queueMs: 50 }
  const why = await unavailable()
  if (why !== undefined) throw new Error(`webapp: cannot run: ${why}; no rows were measured`)
  const connectReps = quick ? 4 : 10
  const throughputReps = quick ? 3 : 6
  const throughputMB = quick ? 50 : 100
  const heapMB = 200
  /** Round trips idle; during a transfer, as many as fit while it runs (about 400 for 200 MB on the link). */
  const chatSamples = quick ? 60 : 300
  const size = webSize(WEB)
  ctx.progress(`build: first load ${size.firstLoad.gzip} B gzip, all ${size.total.gzip} B gzip`)
  const cleanup = new Cleanup()
  const connect = { app: [] as number[], library: [] as number[] }
  const kind = (): TransferRuns => ({ rate: [], cpuPerMB: [], dropsPerMille: [] })
  const runs = (): Throughput => ({ raw: kind(), checked: kind(), app: kind() })
  /** On the mesh link (the targets), and with nothing but this machine's CPUs to limit them. */
  const onLink = runs()
  const unlimited = runs()
  let hashMBps: number[] = []
  let chat: { onLink: ChatRuns; unlimited: ChatRuns } | undefined
  /** B's JS heap during the app's transfer on the link, with nothing else going on, and that transfer's MB/s. */
  let heap: { before: number; peak: number; rate: number } | undefined
  try {
    const chain = await startChain(cleanup, 1, 'webapp')
    const [r0, r1] = chain.urls as [string, string]
    const [ns0, ns1] = chain.net.routers.map((r) => r.ns) as [string, string]
    const dir = await cleanup.tempDir('malla-bench-webapp-')
    const [b0, b1] = await Promise.all([browserIn(cleanup, dir, ns0), browserIn(cleanup, dir, ns1)])
    const a = await openApp(await person(b0, 'A'), r0)
    const b = await openApp(await person(b1, 'B'), r1)
    await Promise.all([connectedAfter(a.page, [b.id], 60_000), connectedAfter(b.page, [a.id], 60_000)])
    ctx.progress('A (behind n0) and B (behind n1) are connected')

    // The third person, behind n0 like most newcomers on a LAN: the app and the library alone take turns.
    for (let i = 0; i < connectReps; i++) {
      for (const mode of ['app', 'library'] as const) {
        const context = await person(b0, `C${i}`)
        try {
          const page = mode === 'app' ? (await openApp(context, r0)).page : await openLibrary(context, r0)
          connect[mode].push(
            await connectedAfter(page, [a.id, b.id]).catch(async (e: Error) => {
              throw new Error(`${e.message}; ${mode} page C${i}: ${await meshState(page)}; A: ${await meshState(a.page)}; B: ${await meshState(b.page)}`)
            }),
          )
          // A person stays a little: until the others see their presence entry with its connections.
          const cId = await page.evaluate(() => ((globalThis as unknown as { mallaSession?: { room: { id: string } }; __malla?: { id: string } }).mallaSession?.room ?? (globalThis as unknown as { __malla: { id: string } }).__malla).id)
          await Promise.all([a.page, b.page].map((p) => presenceOf(p, cId, 2)))
        } finally {
          // The tab closes, as people close tabs: whatever the page's pagehide manages to withdraw.
          await context.close()
        }
        await settle([{ page: a.page, others: [b.id] }, { page: b.page, others: [a.id] }])
      }
      ctx.progress(`connect ${i + 1}/${connectReps}: app ${connect.app.at(-1)?.toFixed(0)} ms, library ${connect.library.at(-1)?.toFixed(0)} ms`)
    }

    await autoAccept(b.page)
    await echoChat(b.page, a.id)
    const namespaces = [ns0, ns1]
    const measured = async (into: TransferRuns, send: () => Promise<number>) => {
      const udpBefore = await udpCounters(ns1)
      const before = await cpuByNamespace(namespaces)
      into.rate.push(await send())
      into.cpuPerMB.push((cpuSpent(before, await cpuByNamespace(namespaces)).total * 1000) / (throughputMB * MB / 1e6))
      const udpAfter = await udpCounters(ns1)
      into.dropsPerMille.push((1000 * (udpAfter.receiveBufferFull - udpBefore.receiveBufferFull)) / Math.max(1, udpAfter.received - udpBefore.received))
    }
    const transfers = async (into: Throughput, label: string) => {
      for (let i = 0; i < throughputReps; i++) {
        await measured(into.raw, () => sendRaw(a.page, b.page, b.id, a.id, throughputMB))
        await measured(into.checked, () => sendRaw(a.page, b.page, b.id, a.id, throughputMB, { window: FILE_TRANSFER_DEFAULTS.receiveWindow, hash: true }))
        await measured(into.app, () => sendFile(a.page, b.id, throughputMB))
        // B removes the received file from its list, as a person who saved it would: the next run starts clean.
        await dismissAll([a.page, b.page])
        const last = (kind: keyof Throughput) => `${kind} ${into[kind].rate.at(-1)?.toFixed(1)} MB/s (CPU ${into[kind].cpuPerMB.at(-1)?.toFixed(0)} ms/MB)`
        ctx.progress(`throughput, ${label}, ${i + 1}/${throughputReps}: ${last('raw')}, ${last('checked')}, ${last('app')}`)
      }
    }
    /** Chat round trips idle, then during a `heapMB` transfer by the app (and, with `raw`, by the raw channel). */
    const chatRuns = async (label: string, raw: boolean): Promise<ChatRuns> => {
      const idle = await chatRoundTrips(a.page, b.id, chatSamples, 50, `${label}-idle`)
      const transfer = sendFile(a.page, b.id, heapMB)
      // Round trips while the file streams; they start once bytes flow.
      await sleep(500)
      const busy = await chatRoundTrips(a.page, b.id, MAX_BUSY_TRIPS, 50, `${label}-busy`, true)
      const appMBps = await transfer
      await dismissAll([a.page, b.page])
      const app = { idle, busy, appMBps }
      if (!raw) return app
      // The same during the raw channel's transfer: what sending that much does to chat, whatever sends it.
      const rawTransfer = sendRaw(a.page, b.page, b.id, a.id, heapMB)
      await sleep(500)
      const busyRaw = await chatRoundTrips(a.page, b.id, MAX_BUSY_TRIPS, 50, `${label}-raw`, true)
      await rawTransfer
      return { ...app, busyRaw }
    }

    // First with nothing between the pages but this machine's CPUs: what the app's own work costs.
    await transfers(unlimited, 'no link limit')
    // The check's cost, alone: SHA-256 runs on both sides of every transfer, on the cores that also move the bytes.
    hashMBps = [await hashRate(b.page, throughputMB), await hashRate(a.page, throughputMB), await hashRate(b.page, throughputMB)]
    ctx.progress(`SHA-256 in a page: ${hashMBps.map((v) => v.toFixed(0)).join(', ')} MB/s`)
    const chatUnlimited = await chatRuns('free', false)
    ctx.progress(`chat, no link limit: p95 idle ${percentile(chatUnlimited.idle, 95).toFixed(1)} ms, during a transfer ${percentile(chatUnlimited.busy, 95).toFixed(1)} ms`)

    // Then on a link as a mesh has: the radios, not the CPUs, set the pace.
    for (const ns of namespaces) await limitLinks(ns, link)
    ctx.progress(`every link of both namespaces limited to ${link.mbit} Mbit/s (tc tbf, ${link.queueMs} ms of queue)`)
    await transfers(onLink, `${link.mbit} Mbit/s link`)
    const chatOnLink = await chatRuns('link', true)
    chat = { onLink: chatOnLink, unlimited: chatUnlimited }
    ctx.progress(`chat on the link: p95 idle ${percentile(chatOnLink.idle, 95).toFixed(1)} ms, during a transfer ${percentile(chatOnLink.busy, 95).toFixed(1)} ms; ${heapMB} MB at ${chatOnLink.appMBps.toFixed(1)} MB/s`)
    // The receiver's heap in a transfer of its own: chat lines make garbage of their own (each redraw of the
    // chat reads its table), which would count in the peak.
    const watch = await heapWatch(b.page)
    await watch.start()
    const alone = await sendFile(a.page, b.id, heapMB)
    heap = { ...watch.stop(), rate: alone }
    await dismissAll([a.page, b.page])
    ctx.progress(`heap: ${((heap.peak - heap.before) / MB).toFixed(1)} MB more at its peak during ${heapMB} MB at ${alone.toFixed(1)} MB/s`)
  } finally {
    await cleanup.run()
  }
  if (!chat || !heap) throw new Error('webapp: the run ended early')
  const kb = (n: number) => n / 1000
  const rows: BenchRow[] = [
    row({ section: 'size (gzip)', name: 'first load', unit: 'KB', value: kb(size.firstLoad.gzip), target: kb(WEB_BUDGET.firstLoadGzip) }),
    row({ section: 'size (gzip)', name: 'everything it can load', unit: 'KB', value: kb(size.total.gzip), target: kb(WEB_BUDGET.totalGzip) }),
    row({ section: 'third of 3 people on 2 routers', name: 'page load to connected to both', unit: 'ms', value: summarize(connect.app), baseline: { name: 'the library alone, bare page', value: summarize(connect.library) }, target: TARGETS.connectMs }),
  ]
  const ratio = (a: number[], b: number[]) => summarize(a).median / summarize(b).median
  // Each rep runs raw, checked and app in turn: ratios within a rep say how much of the spread is this machine's.
  const paired = (a: number[], b: number[]) => summarize(a.map((v, i) => v / (b[i] as number)))
  const transferRows = (section: string, t: Throughput, target: boolean) => {
    rows.push(
      row({ section, name: `${throughputMB} MB with the app`, unit: 'MB/s', better: 'higher', value: summarize(t.app.rate), baseline: { name: 'raw file channel', value: summarize(t.raw.rate) } }),
      row({ section, name: 'app / raw channel (medians)', unit: 'ratio', better: 'higher', value: ratio(t.app.rate, t.raw.rate), ...(target ? { target: TARGETS.throughputRatio } : {}) }),
      row({ section, name: 'app / raw channel, run by run', unit: 'ratio', better: 'higher', value: paired(t.app.rate, t.raw.rate) }),
      // The same channel doing only what the check needs (the receiver's window, SHA-256 of every byte on both
      // sides): how much of the gap the SHA-256s alone take, and how much is the rest of the app (reading the
      // File, storing Blob parts, offer and accept, the page around it).
      row({ section, name: 'raw channel + window + both SHA-256s', unit: 'MB/s', better: 'higher', value: summarize(t.checked.rate), baseline: { name: 'raw file channel', value: summarize(t.raw.rate) } }),
      row({ section, name: 'raw + window + SHA-256s / raw, run by run', unit: 'ratio', better: 'higher', value: paired(t.checked.rate, t.raw.rate) }),
      row({ section, name: 'app / (raw + window + SHA-256s), run by run', unit: 'ratio', better: 'higher', value: paired(t.app.rate, t.checked.rate) }),
      // What each MB costs the machine, whatever the rate: the app's work on top of the channel's.
      row({ section, name: 'CPU per MB moved, both sides, app', unit: 'ms', value: summarize(t.app.cpuPerMB), baseline: { name: 'raw file channel', value: summarize(t.raw.cpuPerMB) } }),
      row({ section, name: 'CPU per MB moved, both sides, raw + window + SHA-256s', unit: 'ms', value: summarize(t.checked.cpuPerMB), baseline: { name: 'raw file channel', value: summarize(t.raw.cpuPerMB) } }),
      // B's network process reads the connection's UDP socket; when the cores are busy elsewhere, it reads too
      // late and the kernel drops what does not fit (the connection's sockets had 128 KiB, by `ss -uamp`). Each
      // loss costs SCTP a retransmission and halves its congestion window: one cause of the spread from run to run.
      row({ section, name: 'UDP datagrams dropped at B (socket buffer full), per 1,000, app', unit: '‰', value: summarize(t.app.dropsPerMille), baseline: { name: 'raw file channel', value: summarize(t.raw.dropsPerMille) } }),
      row({ section, name: 'UDP datagrams dropped at B (socket buffer full), per 1,000, raw + window + SHA-256s', unit: '‰', value: summarize(t.checked.dropsPerMille), baseline: { name: 'raw file channel', value: summarize(t.raw.dropsPerMille) } }),
    )
  }
  transferRows(`file transfer on a ${link.mbit} Mbit/s link, 2 pages behind 2 routers`, onLink, true)
  const free = 'file transfer, no link limit (this machine\'s 2 cores set the pace)'
  transferRows(free, unlimited, false)
  const hashMedian = summarize(hashMBps).median
  rows.push(
    row({ section: free, name: 'SHA-256 in a page, alone', unit: 'MB/s', better: 'higher', value: summarize(hashMBps) }),
    // Both sides hash every byte: this much of the CPU per MB above is the check's.
    row({ section: free, name: 'CPU per MB of the two SHA-256s, at that rate', unit: 'ms', value: (2 * 1000) / hashMedian }),
  )
  const chatRows = (section: string, c: ChatRuns, target: boolean) => {
    const p95 = { idle: percentile(c.idle, 95), busy: percentile(c.busy, 95) }
    // n: the round trips the figure is made of (idle: always `chatSamples`).
    rows.push(row({ section, name: `p95 during a ${heapMB} MB transfer`, n: c.busy.length, unit: 'ms', value: p95.busy, baseline: { name: 'p95 idle', value: p95.idle } }))
    if (c.busyRaw) rows.push(row({ section, name: `p95 during a ${heapMB} MB transfer`, n: c.busy.length, unit: 'ms', value: p95.busy, baseline: { name: `p95 during a raw-channel transfer (${c.busyRaw.length} round trips)`, value: percentile(c.busyRaw, 95) } }))
    rows.push(
      row({ section, name: 'p95 during / p95 idle', n: c.busy.length, unit: 'ratio', value: p95.busy / p95.idle, ...(target ? { target: TARGETS.chatRatio } : {}) }),
      row({ section, name: 'median during a transfer', unit: 'ms', value: summarize(c.busy), baseline: { name: 'idle', value: summarize(c.idle) } }),
    )
  }
  chatRows(`chat round trip A → B → A, ${link.mbit} Mbit/s link`, chat.onLink, true)
  chatRows('chat round trip A → B → A, no link limit', chat.unlimited, false)
  rows.push(
    row({ section: `receiver during a ${heapMB} MB transfer`, name: 'JS heap growth (peak − before)', unit: 'MB', value: (heap.peak - heap.before) / MB, target: TARGETS.heapMB }),
    // What a chat line every 50 ms (and its echo, through both routers as well) costs a transfer on these 2 cores.
    row({ section: `receiver during a ${heapMB} MB transfer`, name: `transfer rate (${link.mbit} Mbit/s link) with chat going on`, unit: 'MB/s', better: 'higher', value: chat.onLink.appMBps, baseline: { name: 'alone (the heap\'s run)', value: heap.rate } }),
  )
  return {
    title: 'the web app: size, time to connect, file transfer, chat during a transfer, receiver memory',
    rows,
    params: { quick, linkMbit: link.mbit, linkQueueMs: link.queueMs, connectReps, throughputReps, throughputMB, heapMB, chatSamples, firstLoadFiles: size.firstLoad.files, allFiles: size.total.files },
    notes: [
      '2 malla daemons with their defaults in 2 network namespaces; one headless Chromium per namespace, a fresh context per person; the app from each router\'s address (plain http://, no secure context), room "bench".',
      'Connect: from navigation start of the third page (behind n0) to direct connections with A (n0) and B (n1); the baseline runs joinRoom from /malla.js in the router\'s bare /debug/room page, taking turns with the app. Every page has a key (the app makes one in the browser on a first visit; the baseline makes one with openpgp.js injected before the page loads) and signs its records, since the app answers only signed offers.',
      `The link: for the targets, every interface of both namespaces sends at most ${link.mbit} Mbit/s (tc tbf, ${link.queueMs} ms of queue; \`--link-mbit N\` changes the rate), as on a mesh, where the radio links set the pace (a good 5 GHz mesh link carries about this much; many carry less). With no limit, the only bottleneck is this machine's 2 cores, shared by both browsers, both ends' network processes and both SHA-256s: those rows say what the app's own work costs in CPU, not how it uses a link, and they have no target.`,
      'Throughput: A → B across the two routers, on the connection\'s file channel, raw, raw + window + SHA-256s and app runs taking turns; the raw baseline sends 64 KiB frames (the largest a file frame may be) keeping up to 1 MiB queued until B says it has every byte; "raw + window + SHA-256s" is the same loop kept within B\'s 256 KiB window (B acks each half) with both pages hashing every frame with the library\'s sha256Stream (B\'s hash must equal A\'s); the app (the library\'s defaults: 32 KiB frames, 1 MiB queued at most, within B\'s 256 KiB receive window, which B acks every frame, and no more in flight than keeps about 5 ms of queue by the acks\' round trips) adds the offer, accept, SHA-256 on both sides (WebAssembly) and Blob parts, until the sender hears the hash matched.',
      'CPU per MB: user and system time of every process in the two namespaces (both Chromiums: renderer, network service, browser process; both routers), from /proc, over each transfer, divided by the MB moved. "SHA-256 in a page, alone" hashes the run\'s file size in 64 KiB frames in B\'s page, then A\'s, then B\'s, with nothing else going on.',
      `Chat: A writes a line to the room table, B echoes it when it arrives, A times the echo; 50 ms between round trips; ${chatSamples} idle, then during the app's ${heapMB} MB transfer as many as end before it does (the n column), with no link limit and on the link; on the link also during ${heapMB} MB sent raw on the same channel (what sending that much does to chat, whatever sends it). Heap: CDP Runtime.getHeapUsage on B every 200 ms during another ${heapMB} MB transfer by the app on the link, with no chat (chat lines make garbage of their own), after a forced GC before it.`,
    ],
  }
}
