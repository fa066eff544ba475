import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CLI } from '../helpers/processes.js'
import { namespaceGuard, watch, type Watched } from '../integration/netns-helpers.js'

export type TestContext = { after(fn: () => unknown): void }

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

/** `malla lab --netns` with `n` routers in a chain; stopped (and its namespaces removed) when the test ends. */
export async function lab(t: TestContext, n: number): Promise<{ urls: string[]; ns: string[]; devs: string[][] }> {
  const child = watch(spawn(process.execPath, [CLI, 'lab', '--netns', '--routers', String(n), '--topology', 'chain'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.after(async () => {
    if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGTERM')
    await child.exited(20_000)
  })
  const urls = (await child.waitForCount(/^router r\d+ /, n, 60_000)).map((l) => (l.split(' ')[2] as string).replace(/\/$/, ''))
  const ns = urls.map((_, i) => (/namespace (\S+)/.exec(child.lines.find((l) => l.startsWith(`lab: router r${i + 1} `)) ?? '') as RegExpExecArray)[1] as string)
  // The lab removes its namespaces when it stops; this guard covers a lab that could not (killed, stuck).
  // Only this lab's: other labs and benchmarks on the machine use the same naming.
  const runId = (/^malla-([0-9a-f]{6})-/.exec(ns[0] as string) as RegExpExecArray)[1] as string
  await namespaceGuard(t, new RegExp(`^malla-${runId}-`), { includeExisting: true })
  // Each router's veths along the chain (`links mXXXXXX-0a>r2,...`), as the lab prints them.
  const devs = urls.map((_, i) => [...(/ links (\S+)/.exec(child.lines.find((l) => l.startsWith(`lab: router r${i + 1} `)) ?? '')?.[1] ?? '').matchAll(/([^,>\s]+)>/g)].map((m) => m[1] as string))
  return { urls, ns, devs }
}

/** A Node peer (`fixtures/node-peer.ts`) inside namespace `ns`, killed when the test ends. */
export async function nodePeer(t: TestContext, ns: string, routerUrl: string, room: string, target: number, max?: number): Promise<Watched & { id: string; send(cmd: string): void }> {
  const args = [join(FIXTURES, 'node-peer.ts'), routerUrl, room, String(target), ...(max !== undefined ? [String(max)] : [])]
  const child = watch(spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', ...args], { stdio: ['pipe', 'pipe', 'pipe'] }))
  t.after(async () => {
    child.child.kill('SIGKILL')
    await child.exited(5000)
  })
  const ready = JSON.parse(await child.waitFor(/"event":"ready"/, 30_000)) as { id: string; kind: string }
  assert.equal(ready.kind, 'malla')
  return { ...child, id: ready.id, send: (cmd) => child.child.stdin?.write(`${cmd}\n`) }
}

export async function nodeStats(p: Awaited<ReturnType<typeof nodePeer>>): Promise<{ connected: number; peers: string[]; peakPeerConnections: number }> {
  const before = p.lines.filter((l) => l.includes('"event":"stats"')).length
  p.send('stats')
  const lines = await p.waitForCount(/"event":"stats"/, before + 1, 10_000)
  return JSON.parse(lines.at(-1) as string)
}

/** Re-checks `ok` every 200 ms until it holds; fails with `what()` after `ms`. */
export async function eventually(ok: () => Promise<boolean>, what: () => Promise<string>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${await what()}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

