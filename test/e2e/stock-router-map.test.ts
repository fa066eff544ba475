import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { runCli, tempDir } from '../helpers/processes.js'
import { loopbackNamespace, needsRoot, watch } from '../integration/netns-helpers.js'
import { errorsOf, openApp, screenshots, show } from './app-page.js'
import { browserIn } from './browser.js'
import { FIXTURES } from './lab.js'

test('the map on a stock LibreMesh router (no malla daemon): routers at their coordinates, links with their signal, from its /ubus', { timeout: Number(process.env.E2E_TIMEOUT ?? 120_000) }, async (t) => {
  if (!needsRoot(t)) return
  // Loopback only: the router and the page (and its WebRTC, were it to connect) stay on 127.0.0.1.
  const ns = await loopbackNamespace(t, 'mmap')
  const www = join(await tempDir(t, 'malla-www-'), 'www')
  const built = await runCli(['build-static', www])
  assert.equal(built.code, 0, built.stderr)
  const router = watch(spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(FIXTURES, 'stock-router.ts'), '127.0.0.1', '8080', www], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.after(async () => {
    router.child.kill('SIGTERM')
    await router.exited(5000)
  })
  await router.waitFor(/^listening /, 20_000)
  // The router by name, as LibreMesh users reach it, on plain http://.
  const browser = await browserIn(t, ns, ['--host-resolver-rules=MAP thisnode.info 127.0.0.1'])
  const page = await openApp(browser, 'http://thisnode.info:8080/', 'Ana')
  await show(page, 'map')
  for (const r of ['LiMe-a', 'LiMe-b', 'LiMe-c']) await page.waitForSelector(`g.node.router[data-node="router:${r}"]`, { timeout: 20_000 })
  const place = (id: string) =>
    page.$eval(`g.node.router[data-node="${id}"]`, (g) => {
      const m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(g.getAttribute('transform') ?? '')
      return [Number(m?.[1]), Number(m?.[2])] as const
    })
  // Give the layout a moment: the routers with coordinates are pinned, so they do not move meanwhile.
  await page.waitForTimeout(500)
  const [a, b, c] = [await place('router:LiMe-a'), await place('router:LiMe-b'), await place('router:LiMe-c')]
  assert.ok(a[0] < c[0] && c[0] < b[0], `west to east: a ${a}, c ${c}, b ${b}`)
  assert.ok(c[1] < a[1] && Math.abs(a[1] - b[1]) < 1, `c north of a and b, which share a latitude: a ${a}, b ${b}, c ${c}`)
  const quality = (x: string, y: string) => page.getAttribute(`line.edge.mesh[data-a="router:${x}"][data-b="router:${y}"], line.edge.mesh[data-a="router:${y}"][data-b="router:${x}"]`, 'data-quality', { timeout: 10_000 })
  assert.equal(await quality('LiMe-a', 'LiMe-b'), '0.75')
  assert.equal(await quality('LiMe-b', 'LiMe-c'), '0.17')
  assert.equal(await quality('LiMe-a', 'LiMe-c'), '0.80')
  assert.deepEqual(errorsOf(page), [])
  await screenshots(page, 'map-libremesh')
})
