import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { needsRoot, watch } from '../integration/netns-helpers.js'
import { browserIn, joinInPage, pageState, waitConnected, withIdentityApi } from './browser.js'
import { eventually, FIXTURES, lab } from './lab.js'

/**
 * A man in the middle between a browser and its router: pages that join with keys, one of them through a
 * proxy (test/e2e/fixtures/tampering-proxy.ts) that rewrites the DTLS fingerprint of every offer and answer
 * passing through it, both ways, as a router that wanted to sit between two people would. The signatures
 * (§18.2) give it away: the pages behind honest routers connect to each other, the page behind the proxy
 * connects to nobody and counts the forged records it refused, and the honest router keeps none of what the
 * proxy made in that page's name.
 */
test('a router that rewrites offers is found out: no connection opens through it', { timeout: Number(process.env.E2E_TIMEOUT ?? 300_000) }, async (t) => {
  if (!needsRoot(t)) return
  const { urls, ns } = await lab(t, 2)
  const [r1, r2] = urls as [string, string]
  const [ns1, ns2] = ns as [string, string]
  const port = 18_000 + Math.floor(Math.random() * 1000)
  const proxy = watch(spawn('ip', ['netns', 'exec', ns2, process.execPath, '--import', 'tsx', join(FIXTURES, 'tampering-proxy.ts'), r2, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.after(async () => {
    proxy.child.kill('SIGKILL')
    await proxy.exited(5000)
  })
  await proxy.waitFor(/"event":"ready"/, 20_000)

  const [b1, b2] = await Promise.all([browserIn(t, ns1), browserIn(t, ns2)])
  for (const b of [b1, b2]) await withIdentityApi(b)

  const room = 'mitm'
  const ana = await joinInPage(b1, `${r1}/debug/room`, room, { identityName: 'Ana' })
  const cleo = await joinInPage(b2, `${r2}/debug/room`, room, { identityName: 'Cleo' })
  const bea = await joinInPage(b2, `http://127.0.0.1:${port}/debug/room`, room, { identityName: 'Bea' })
  assert.equal(bea.kind, 'libremesh', 'the proxy passes for a plain LibreMesh router')

  // Behind honest routers, Ana and Cleo connect, each knowing the other's key.
  await Promise.all([waitConnected(ana.page, 1, 60_000), waitConnected(cleo.page, 1, 60_000)])
  assert.deepEqual((await pageState(ana.page)).peers, [cleo.id])
  // Everything reached Bea rewritten, and she refuses it; what she wrote reached the router rewritten, and the
  // router (a malla daemon checks signatures on arrival, §18.2) refused to keep it, so nobody else even sees it.
  await proxy.waitFor(/"event":"rewrote"/, 20_000)
  await eventually(
    async () => (await pageState(bea.page)).stats.ignored.offers >= 1,
    async () => JSON.stringify(await Promise.all([ana, bea, cleo].map(async (p) => (await pageState(p.page)).stats))),
    30_000,
  )
  // Long enough for Bea's polls (every second) to have carried offers and answers both ways several times.
  await new Promise((resolve) => setTimeout(resolve, 8000))
  const [a, b, c] = await Promise.all([ana, bea, cleo].map((p) => pageState(p.page)))
  assert.deepEqual(b?.peers, [], `Bea connected through the proxy: ${JSON.stringify(b)}`)
  assert.ok(!a?.peers.includes(bea.id) && !c?.peers.includes(bea.id))
  const kept = (await cleo.page.evaluate(async () => (await fetch('/malla/v1/tables/room-mitm-_offers')).json())) as Record<string, unknown>
  assert.ok(Object.keys(kept).some((k) => k.startsWith(`${ana.id}.`)), 'the router holds Ana\'s offers')
  assert.deepEqual(Object.keys(kept).filter((k) => k.startsWith(`${bea.id}.`)), [], 'and none of the rewritten offers made in Bea\'s name')
  t.diagnostic(`refused: Ana ${JSON.stringify(a?.stats.ignored)}, Cleo ${JSON.stringify(c?.stats.ignored)}, Bea ${JSON.stringify(b?.stats.ignored)}; the proxy rewrote ${proxy.lines.filter((l) => l.includes('rewrote')).length} exchanges`)
})
