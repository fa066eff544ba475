import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

type TestContext = { after(fn: () => unknown): void }

/** Debian's Chromium, as a user has it; never a downloaded build. */
export const CHROMIUM = '/usr/bin/chromium'
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/**
 * A headless Chromium whose network is namespace `ns`: it gathers ICE candidates on that namespace's
 * default-route interface, as a laptop on a router's LAN would. Playwright talks to it over a pipe, which
 * crosses namespaces. Without `ns`, the host's own network: only for pages that make no WebRTC connection
 * (one would gather the host's addresses) and reach nothing but loopback. A fresh profile directory each
 * time; closed (and removed) when the test ends.
 */
export async function browserIn(t: TestContext, ns: string | undefined, extraArgs: readonly string[] = []): Promise<BrowserContext> {
  const dir = await mkdtemp(join(tmpdir(), 'malla-chromium-'))
  const wrapper = join(dir, 'chromium-in-netns')
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec '${ns}' ${CHROMIUM} "$@"\n`)
  await chmod(wrapper, 0o755)
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: ns === undefined ? CHROMIUM : wrapper,
    headless: true,
    args: [...FLAGS, ...extraArgs],
    timeout: 30_000,
  })
  // tsx compiles this file with esbuild's keepNames, which wraps named functions inside page.evaluate()
  // callbacks in a `__name(...)` helper that exists only in Node: give pages a harmless one.
  await context.addInitScript({ content: 'globalThis.__name = (f) => f' })
  t.after(async () => {
    await context.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  return context
}

/**
 * Gives the pages of `context` the identity API (in-page/identity-api.ts, as a script run before each page
 * loads), so that `joinInPage(…, { identityName })` joins with a key: the router's /malla.js has no OpenPGP.
 */
export async function withIdentityApi(context: BrowserContext): Promise<void> {
  identityApi ??= build({ entryPoints: [fileURLToPath(new URL('./in-page/identity-api.ts', import.meta.url))], bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022', logLevel: 'silent' }).then((out) => (out.outputFiles[0] as { text: string }).text)
  await context.addInitScript({ content: await identityApi })
}
let identityApi: Promise<string> | undefined

export interface JoinedPage {
  readonly page: Page
  readonly id: string
  readonly kind: string
  readonly router: string | null
  readonly stunUrls: string[]
  readonly secureContext: boolean
  readonly hasSubtle: boolean
}

/** Opens `url` in a new tab, imports the router's `/malla.js` and joins `room`; messages are collected in the page. */
export async function joinInPage(context: BrowserContext, url: string, room: string, options: Record<string, unknown> = {}): Promise<JoinedPage> {
  const page = await context.newPage()
  page.on('pageerror', (e) => process.stderr.write(`page ${url}: uncaught ${e.message}\n`))
  await page.goto(url, { timeout: 15_000 })
  const r = await page.evaluate(
    async ({ room, options }) => {
      const m = await import(`${location.origin}/malla.js`)
      const w = window as unknown as Record<string, unknown>
      const got: unknown[] = []
      w.__got = got
      // `debug: true` sends the mesh's log to the page's console (see `page.on('console')`).
      const say = (level: string) => (message: string, fields?: object) => console.log(`${level} ${message} ${JSON.stringify(fields ?? {})}`)
      const log = options.debug ? { debug: say('debug'), info: say('info'), warn: say('warn'), error: say('error') } : undefined
      // `identityName`: join with a new key of that name, made by the identity API a test injected (identity-api.ts).
      const { identityName, ...rest } = options as { identityName?: string }
      const api = (globalThis as unknown as { identityApi?: { createIdentity(name: string): Promise<unknown> } }).identityApi
      const identity = identityName && api ? await api.createIdentity(identityName) : undefined
      const joined = await m.joinRoom(room, { ...rest, ...(identity ? { identity } : {}), ...(log ? { log } : {}) })
      w.__room = joined
      joined.mesh.on('peer', (p: { id: string; on: (e: string, f: (v: unknown, k: string) => void) => void }) => {
        p.on('message', (value: unknown, kind: string) => got.push({ from: p.id, value, kind }))
      })
      return {
        id: joined.id as string,
        kind: joined.router.kind as string,
        router: (joined.router.name as string | undefined) ?? null,
        stunUrls: [...joined.router.stunUrls] as string[],
        secureContext: isSecureContext,
        hasSubtle: typeof crypto.subtle !== 'undefined',
      }
    },
    { room, options },
  )
  return { page, ...r }
}

export interface PageState {
  readonly stats: { connected: number; peakPeerConnections: number; ignored: { offers: number; answers: number } }
  readonly peers: string[]
  readonly got: Array<{ from: string; value: unknown; kind: string }>
}

export function pageState(page: Page): Promise<PageState> {
  return page.evaluate(() => {
    const w = window as unknown as { __room: { mesh: { stats(): PageState['stats']; peers(): Array<{ id: string }> } }; __got: PageState['got'] }
    return { stats: w.__room.mesh.stats(), peers: w.__room.mesh.peers().map((p) => p.id), got: w.__got }
  })
}

/** Waits, inside the page, until it holds at least `n` connections. */
export async function waitConnected(page: Page, n: number, timeoutMs = 30_000): Promise<void> {
  try {
    await page.waitForFunction((n) => (window as unknown as { __room: { mesh: { stats(): { connected: number } } } }).__room.mesh.stats().connected >= n, n, {
      timeout: timeoutMs,
      polling: 100,
    })
  } catch (e) {
    const state = await pageState(page).catch((s: Error) => s.message)
    throw new Error(`${page.url()}: not ${n} connections within ${timeoutMs} ms: ${JSON.stringify(state)}`, { cause: e })
  }
}

/** Sends `{hello: own id}` to every connected peer. */
export function helloFromPage(page: Page): Promise<void> {
  return page.evaluate(async () => {
    const w = window as unknown as { __room: { id: string; mesh: { peers(): Array<{ send(v: unknown): Promise<void> }> } } }
    await Promise.all(w.__room.mesh.peers().map((p) => p.send({ hello: w.__room.id })))
  })
}
