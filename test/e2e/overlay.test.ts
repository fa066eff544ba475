import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import type { Page } from 'playwright-core'
import { cliIn, needsRoot } from '../integration/netns-helpers.js'
import { browserIn, joinInPage, pageState, waitConnected, withIdentityApi } from './browser.js'
import { eventually, lab, nodePeer, nodeStats, type TestContext } from './lab.js'

const run = promisify(execFile)

/**
 * Stops every process of a router's namespace (its daemon) until the test ends or `thaw()` is called: the
 * kernel still forwards packets through it, but its shared-state answers nothing. What crosses it then
 * crosses on the peers' own connections.
 */
async function freeze(t: TestContext, ns: string): Promise<() => Promise<void>> {
  const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter((l) => /^\d+$/.test(l))
  assert.ok(pids.length > 0, `no process in ${ns}`)
  let frozen = true
  const thaw = async () => {
    if (!frozen) return
    frozen = false
    for (const pid of pids) process.kill(Number(pid), 'SIGCONT')
  }
  t.after(thaw)
  for (const pid of pids) process.kill(Number(pid), 'SIGSTOP')
  return thaw
}

/** Records, in the page, each change to the room's `chat` table with the link it came over. */
async function recordEntries(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __room: { replica: { on(e: string, f: (e: { type: string; keys: string[]; sources?: Map<string, string> }) => void): void }; tables: Map<string, string> }; __entries: unknown[] }
    w.__entries = []
    const chat = w.__room.tables.get('chat')
    w.__room.replica.on('change', (e) => {
      if (e.type === chat) for (const key of e.keys) w.__entries.push({ key, via: e.sources?.get(key) ?? 'router', at: performance.now() })
    })
  })
}

test('the room\'s tables travel over the peers\' own connections, across a router that answers nothing', { timeout: Number(process.env.E2E_TIMEOUT ?? 300_000) }, async (t) => {
  if (!needsRoot(t)) return
  const { urls, ns } = await lab(t, 3)
  const [r1, r2, r3] = urls as [string, string, string]
  const [ns1, ns2, ns3] = ns as [string, string, string]

  await t.test('Node peers behind r1 and r3: an entry crosses the overlay while r2 is frozen, and the routers catch up after', async () => {
    const room = 'e2e-overlay-node'
    const [a, b] = await Promise.all([nodePeer(t, ns1, r1, room, 1), nodePeer(t, ns3, r3, room, 1)])
    await eventually(async () => (await nodeStats(a)).peers.includes(b.id), async () => JSON.stringify(await nodeStats(a)), 60_000)
    const before = b.lines.length
    const thaw = await freeze(t, ns2)
    const started = Date.now()
    a.send('write hello from-r1')
    const line = await b.waitFor(/"event":"entry","key":"hello"/, 10_000)
    const took = Date.now() - started
    const { at: _at, ...entry } = JSON.parse(line) as { data: unknown; via: string; at: number }
    assert.deepEqual(entry, { event: 'entry', key: 'hello', data: 'from-r1', via: `peer ${a.id}` })
    assert.ok(b.lines.length > before)
    t.diagnostic(`over the overlay, with r2 frozen: ${took} ms from the write command to the far peer`)
    await thaw()
    // The routers still get each entry from its author, and carry it on as before.
    // Read inside r3's namespace: a lab address means nothing outside it.
    const chatType = 'room-e2e_2doverlay_2dnode-chat'
    const atR3 = async () => JSON.parse((await cliIn(ns3, ['get', chatType, '--url', r3])).stdout || '{}') as Record<string, { data: unknown }>
    await eventually(async () => (await atR3()).hello?.data === 'from-r1', async () => `r3 has ${JSON.stringify(await atR3())}`, 30_000)
  })

  await t.test('pages behind r1 and r3: an entry written by one reaches the other over the overlay while r2 is frozen', async () => {
    const room = 'e2e-overlay-page'
    const [b1, b3] = await Promise.all([browserIn(t, ns1), browserIn(t, ns3)])
    const [p1, p3] = await Promise.all([joinInPage(b1, `${r1}/debug/room`, room, { target: 1, tables: ['chat'] }), joinInPage(b3, `${r3}/debug/room`, room, { target: 1, tables: ['chat'] })])
    await Promise.all([waitConnected(p1.page, 1, 60_000), waitConnected(p3.page, 1, 60_000)])
    await recordEntries(p3.page)
    const thaw = await freeze(t, ns2)
    await p1.page.evaluate(async () => {
      const w = window as unknown as { __room: { replica: { insert(type: string, e: Array<[string, unknown]>): Promise<unknown> }; tables: Map<string, string> } }
      await w.__room.replica.insert(w.__room.tables.get('chat') as string, [['page-hello', { text: 'from a page behind r1' }]])
    })
    await p3.page.waitForFunction(() => (window as unknown as { __entries: Array<{ key: string }> }).__entries.some((e) => e.key === 'page-hello'), undefined, { timeout: 10_000, polling: 20 })
    const entries = (await p3.page.evaluate(() => (window as unknown as { __entries: unknown[] }).__entries)) as Array<{ key: string; via: string }>
    assert.deepEqual(entries.filter((e) => e.key === 'page-hello').map((e) => e.via), [`peer ${p1.id}`])
    await thaw()
  })

  await t.test('room.send reaches a peer with no direct connection, once, relayed by the peer between; room.connect then opens a direct connection to it', async () => {
    const room = 'e2e-overlay-send'
    // B first (it takes two connections); A and C take one each: C, behind r3, prefers B (one router hop
    // nearer than A) and A is full by then, so the only path from A to C runs through B.
    const b = await nodePeer(t, ns2, r2, room, 2)
    const a = await nodePeer(t, ns1, r1, room, 1, 1)
    await eventually(async () => (await nodeStats(a)).peers.includes(b.id), async () => JSON.stringify(await nodeStats(a)), 60_000)
    const c = await nodePeer(t, ns3, r3, room, 1, 1)
    await eventually(async () => (await nodeStats(c)).peers.includes(b.id), async () => JSON.stringify(await nodeStats(c)), 60_000)
    assert.ok(!(await nodeStats(a)).peers.includes(c.id), 'A and C are not connected')
    a.send(`send ${c.id} over two connections`)
    const sent = JSON.parse(await a.waitFor(/"event":"sent"/, 10_000)) as { ok: boolean; error?: string }
    assert.deepEqual(sent, { event: 'sent', to: c.id, ok: true })
    await new Promise((r) => setTimeout(r, 300))
    const routed = c.lines.filter((l) => l.includes('"event":"routed"')).map((l) => JSON.parse(l) as { from: string; body: string })
    assert.deepEqual(routed, [{ event: 'routed', from: a.id, body: 'over two connections' }])
    assert.deepEqual(b.lines.filter((l) => l.includes('"event":"routed"')), [], 'B relayed it and delivered nothing')

    // A directed connection from A to C: the offer and the answer go through B, the connection does not.
    a.send(`connect ${c.id}`)
    const connected = JSON.parse(await a.waitFor(/"event":"connected"/, 30_000)) as { ok: boolean; error?: string; ms: number }
    assert.equal(connected.ok, true, connected.error)
    t.diagnostic(`directed connection A→C (offer and answer relayed by B): open in ${connected.ms.toFixed(0)} ms`)
    await eventually(async () => (await nodeStats(c)).peers.includes(a.id), async () => JSON.stringify(await nodeStats(c)), 10_000)
    a.send('hello')
    await c.waitFor(new RegExp(`"event":"message","from":"${a.id}"`), 10_000)
  })

  await t.test('with keys, a directed offer and its answer travel encrypted to the other person through the peer between; one in clear under a key-bound id is refused', async () => {
    const room = 'e2e-overlay-sealed'
    const [b1, b2, b3] = await Promise.all([browserIn(t, ns1), browserIn(t, ns2), browserIn(t, ns3)])
    for (const b of [b1, b2, b3]) await withIdentityApi(b)
    const pb = await joinInPage(b2, `${r2}/debug/room`, room, { target: 2, identityName: 'Bea' })
    const pa = await joinInPage(b1, `${r1}/debug/room`, room, { target: 1, max: 1, identityName: 'Ana' })
    await waitConnected(pa.page, 1, 60_000)
    const pc = await joinInPage(b3, `${r3}/debug/room`, room, { target: 1, max: 1, identityName: 'Caro' })
    await Promise.all([waitConnected(pc.page, 1, 60_000), waitConnected(pb.page, 2, 60_000)])
    assert.ok(!(await pageState(pa.page)).peers.includes(pc.id), 'A and C are not connected')
    // What reaches C and A as directed signaling, as it arrived.
    for (const p of [pa.page, pc.page]) {
      await p.evaluate(() => {
        const w = window as unknown as { __room: { overlay: { messages: { on(e: string, f: (from: string, sig: unknown) => void): void } } }; __signals: unknown[] }
        w.__signals = []
        w.__room.overlay.messages.on('signal', (from, sig) => w.__signals.push({ from, sig }))
      })
    }
    // Presence must name each other's keys first: a description is sealed only to a known key.
    await pa.page.waitForFunction(async (to) => (await (window as unknown as { __room: { presence: { view(): Promise<Array<{ id: string; fingerprint?: string }>> } } }).__room.presence.view()).some((p) => p.id === to && p.fingerprint), pc.id, { timeout: 20_000 })
    const ms = await pa.page.evaluate(async (to) => {
      const started = performance.now()
      await (window as unknown as { __room: { connect(to: string): Promise<unknown> } }).__room.connect(to)
      return performance.now() - started
    }, pc.id)
    t.diagnostic(`page A → page C, directed and sealed both ways: open in ${ms.toFixed(0)} ms`)
    type Sig = { from: string; sig: { t: string; e?: string; s?: unknown } }
    const atC = (await pc.page.evaluate(() => (window as unknown as { __signals: unknown[] }).__signals)) as Sig[]
    const atA = (await pa.page.evaluate(() => (window as unknown as { __signals: unknown[] }).__signals)) as Sig[]
    const offer = atC.find((x) => x.from === pa.id && x.sig.t === 'offer')
    const answer = atA.find((x) => x.from === pc.id && x.sig.t === 'answer')
    for (const m of [offer, answer]) {
      assert.ok(m, JSON.stringify({ atC, atA }).slice(0, 500))
      assert.match(m.sig.e ?? '', /^-----BEGIN PGP MESSAGE-----/)
      assert.equal(m.sig.s, undefined, 'no description in clear')
      assert.doesNotMatch(JSON.stringify(m.sig), /candidate|a=fingerprint|sha-256/i)
    }
    // Bea (with a key) sends C an offer in clear: refused, not answered.
    const refused = await pb.page.evaluate(async (to) => {
      const w = window as unknown as { __room: { overlay: { messages: { on(e: string, f: (from: string, sig: { t: string; n?: string; why?: string }) => void): () => void; signal(to: string, sig: unknown): Promise<void> } } } }
      const reply = new Promise<{ t: string; why?: string }>((resolve) => {
        const off = w.__room.overlay.messages.on('signal', (from, sig) => {
          if (from === to && sig.n === 'clear1') (off(), resolve(sig))
        })
      })
      await w.__room.overlay.messages.signal(to, { t: 'offer', n: 'clear1', s: ['Zx9T', 'q3kXh7gL0cYb1vT6Nw8pR2sF', 'TyoZwH1l5QOIqrvM3e8WVWZ3iIoqK-9OcT1UXmFwcXE', 'actpass', [], 262144] })
      return reply
    }, pc.id)
    assert.equal(refused.t, 'refuse')
    assert.match(refused.why ?? '', /in clear/)
  })

  await t.test('pages behind r1 and r3 with no connection between them: room.send arrives once, room.connect opens a direct connection that carries messages, presence shows who is where and drops a closed tab', async () => {
    const room = 'e2e-overlay-direct'
    const [b1, b2, b3] = await Promise.all([browserIn(t, ns1), browserIn(t, ns2), browserIn(t, ns3)])
    // As with the Node peers: the page behind r2 takes two connections, the others one each, so A–B–C.
    const pb = await joinInPage(b2, `${r2}/debug/room`, room, { target: 2 })
    const pa = await joinInPage(b1, `${r1}/debug/room`, room, { target: 1, max: 1 })
    await waitConnected(pa.page, 1, 60_000)
    const pc = await joinInPage(b3, `${r3}/debug/room`, room, { target: 1, max: 1 })
    await Promise.all([waitConnected(pc.page, 1, 60_000), waitConnected(pb.page, 2, 60_000)])
    assert.ok(!(await pageState(pa.page)).peers.includes(pc.id), 'A and C are not connected')
    await pc.page.evaluate(() => {
      const w = window as unknown as { __room: { overlay: { messages: { on(e: string, f: (from: string, body: unknown) => void): void } } }; __routed: unknown[] }
      w.__routed = []
      w.__room.overlay.messages.on('message', (from, body) => w.__routed.push({ from, body }))
    })
    await pa.page.evaluate((to) => (window as unknown as { __room: { send(to: string, b: unknown): Promise<void> } }).__room.send(to, { text: 'through B' }), pc.id)
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(await pc.page.evaluate(() => (window as unknown as { __routed: unknown[] }).__routed), [{ from: pa.id, body: { text: 'through B' } }])
    const ms = await pa.page.evaluate(async (to) => {
      const started = performance.now()
      const peer = await (window as unknown as { __room: { connect(to: string): Promise<{ send(v: unknown): Promise<void> }> } }).__room.connect(to)
      const took = performance.now() - started
      await peer.send({ direct: 'hello' })
      return took
    }, pc.id)
    t.diagnostic(`page A → page C, directed: open in ${ms.toFixed(0)} ms`)
    await eventually(async () => (await pageState(pc.page)).got.some((m) => m.from === pa.id && JSON.stringify(m.value) === '{"direct":"hello"}'), async () => JSON.stringify(await pageState(pc.page)), 10_000)

    // Presence: everyone, behind their routers, reachable; round-trip times of A's own connections.
    type View = Array<{ id: string; router?: string; reachable: boolean; rttMs?: number }>
    const view = (page: typeof pa.page) => page.evaluate(async () => (await (window as unknown as { __room: { presence: { view(): Promise<unknown> } } }).__room.presence.view()) as View)
    await eventually(async () => {
      const v = await view(pa.page)
      return v.length === 3 && v.every((p) => p.reachable) && v.filter((p) => p.id !== pa.id).every((p) => typeof p.rttMs === 'number')
    }, async () => JSON.stringify(await view(pa.page)), 20_000)
    const routers = Object.fromEntries((await view(pa.page)).map((p) => [p.id, p.router]))
    assert.deepEqual(routers, { [pa.id]: 'r1', [pb.id]: 'r2', [pc.id]: 'r3' })
    // C's tab closes without a word: its neighbours notice (keepalive), drop it from their entries, and A no longer counts it.
    await pc.page.close()
    await eventually(async () => (await view(pa.page)).find((p) => p.id === pc.id)?.reachable === false, async () => JSON.stringify(await view(pa.page)), 30_000)
  })
})
