import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import { test } from 'node:test'
import { weriftRtcFactory } from '../../src/node/rtc/werift-peer.js'
import { join, type Room } from '../../src/signaling/join.js'
import { compactSession, sessionFacts } from '../../src/signaling/sdp-codec.js'
import { answerKey, signalTypes } from '../../src/signaling/signal-records.js'
import { fetchPoster } from '../../src/transport/http-poster.js'
import { freePort, startDaemon } from '../helpers/processes.js'
import { testRouter } from '../helpers/rooms.js'

type TestContext = { after(fn: () => unknown): void }

const rtc = weriftRtcFactory({ hostAddresses: ['127.0.0.1'] })

async function peer(t: TestContext, base: string, peerId: string, options: { target: number; pool: number }): Promise<Room> {
  const room = await join({ room: 'races', routerUrl: base, rtc, poster: fetchPoster, peerId, max: 4, ...options })
  t.after(() => room.leave())
  return room
}

/** Resolves when `ok()` holds, checked on every mesh event and every 20 ms; fails after `ms`. */
async function until(ok: () => boolean | Promise<boolean>, what: () => string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what()}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Open offers of `of` that `room`'s replica holds now. */
async function openOffersSeen(room: Room, of: string): Promise<number> {
  const view = await room.mesh.view()
  return view.offers.filter((o) => o.record !== 'withdrawn' && o.record.kind === 'offer' && o.record.peer === of).length
}

test('two peers answering one offer: the offerer takes one, the other learns it within a second and moves on', async (t) => {
  const d = await testRouter(t)
  const a = await peer(t, d.base, 'aaaaaaaaaaaaaaaa', { target: 0, pool: 1 })
  const b = await peer(t, d.base, 'bbbbbbbbbbbbbbbb', { target: 0, pool: 0 })
  const c = await peer(t, d.base, 'cccccccccccccccc', { target: 0, pool: 0 })
  await until(async () => (await openOffersSeen(b, a.id)) === 1 && (await openOffersSeen(c, a.id)) === 1, () => 'B and C hold A\'s one offer')
  // Both go for it at the same moment: both answer the same, only, offer.
  b.mesh.setTarget(1)
  c.mesh.setTarget(1)
  let firstOpen = 0
  a.mesh.on('peer', () => (firstOpen ||= Date.now()))
  await until(() => a.mesh.stats().connected >= 1, () => JSON.stringify(a.mesh.stats()))
  const winner = a.mesh.peers()[0]?.id
  const loser = winner === b.id ? c : b
  await until(() => loser.mesh.stats().racesLost >= 1, () => `loser ${JSON.stringify(loser.mesh.stats())}`, 5000)
  const learnt = Date.now() - firstOpen
  assert.ok(learnt < 1000, `the loser gave up ${learnt} ms after the winner's channel opened`)
  assert.equal(loser.mesh.stats().connected, 0, 'the loser did not connect through the taken offer')
  // A replaces the taken offer, so the loser still gets its connection, on the new one.
  await until(() => loser.mesh.stats().connected === 1 && a.mesh.stats().connected === 2, () => `A ${JSON.stringify(a.mesh.stats())} loser ${JSON.stringify(loser.mesh.stats())}`)
  assert.deepEqual(a.mesh.peers().map((p) => p.id).sort(), [b.id, c.id])
})

test('glare: two peers answering each other\'s offers at once end with exactly one connection', async (t) => {
  const d = await testRouter(t)
  const a = await peer(t, d.base, 'aaaaaaaaaaaaaaaa', { target: 0, pool: 1 })
  const b = await peer(t, d.base, 'bbbbbbbbbbbbbbbb', { target: 0, pool: 1 })
  await until(async () => (await openOffersSeen(a, b.id)) === 1 && (await openOffersSeen(b, a.id)) === 1, () => 'each holds the other\'s offer')
  a.mesh.setTarget(1)
  b.mesh.setTarget(1)
  await until(() => a.mesh.stats().connected === 1 && b.mesh.stats().connected === 1, () => `A ${JSON.stringify(a.mesh.stats())} B ${JSON.stringify(b.mesh.stats())}`)
  // Give a second channel every chance to open, then check that one connection is all there is.
  await new Promise((r) => setTimeout(r, 1500))
  assert.deepEqual(a.mesh.peers().map((p) => p.id), [b.id])
  assert.deepEqual(b.mesh.peers().map((p) => p.id), [a.id])
  assert.equal(a.mesh.stats().pendingAnswers + b.mesh.stats().pendingAnswers, 0, 'no attempt left hanging')
  assert.ok(a.mesh.stats().glare + b.mesh.stats().glare >= 1, 'the glare was seen and settled')
  // The lower id keeps its own offer: A offered the connection that survived.
  assert.equal(a.mesh.peers()[0]?.offerer, true)
})

test('a stale answer (for an offer already taken) is ignored: no attempt, no mark', async (t) => {
  const d = await testRouter(t)
  const a = await peer(t, d.base, 'aaaaaaaaaaaaaaaa', { target: 0, pool: 1 })
  const b = await peer(t, d.base, 'bbbbbbbbbbbbbbbb', { target: 0, pool: 0 })
  await until(async () => (await openOffersSeen(b, a.id)) === 1, () => 'B holds A\'s offer')
  const taken = (await b.mesh.view()).offers.find((o) => o.record !== 'withdrawn' && o.record.kind === 'offer')?.key as string
  b.mesh.setTarget(1)
  await until(() => a.mesh.stats().connected === 1, () => JSON.stringify(a.mesh.stats()))
  const before = a.mesh.stats()
  // A well-formed answer from a third peer to the offer B already took, as a router would relay it.
  const other = rtc()
  t.after(() => other.close())
  const offerer = rtc()
  t.after(() => offerer.close())
  const sdp = await other.acceptOffer(await offerer.createOffer())
  const late = 'zzzzzzzzzzzzzzzz'
  const entry = { data: { v: 1, s: compactSession(sessionFacts(sdp)), exp: Date.now() + 15_000 }, author: late, bleachTTL: 2, clock: String(Date.now() * 1000) }
  const res = await fetch(`${d.base}/cgi-bin/shared-state/${signalTypes('races').answers}`, { method: 'POST', body: JSON.stringify({ [answerKey(taken, late)]: entry }) })
  assert.equal(res.status, 200)
  await until(async () => (await a.mesh.view()).answers.some((x) => x.record.peer === late), () => 'A holds the stale answer')
  await new Promise((r) => setTimeout(r, 300))
  const after = a.mesh.stats()
  assert.equal(after.connected, before.connected)
  assert.equal(after.peerConnections, before.peerConnections, 'no RTCPeerConnection spent on it')
  const marks = (await (await fetch(`${d.base}/malla/v1/tables/${signalTypes('races').offers}`)).json()) as Record<string, { data?: { taken?: string } }>
  assert.ok(!Object.values(marks).some((e) => e.data?.taken === late), 'no offer marked taken by the stale answerer')
  assert.deepEqual(after.ignored, before.ignored, 'a stale answer is not malformed, just ignored')
})

test('offers from nearer routers are answered first: hops come from the routers\' malla-links table', async (t) => {
  // r1 - r2 - r3 on loopback; each router publishes its malla neighbours by name.
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()]
  const dirs = await Promise.all([1, 2, 3].map(() => mkdtemp(joinPath(tmpdir(), 'malla-hops-'))))
  const daemons: Array<{ stop(s?: NodeJS.Signals): Promise<void> }> = []
  t.after(async () => {
    for (const d of daemons) await d.stop('SIGKILL')
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })
  const url = (p: number) => `http://127.0.0.1:${p}`
  const plan: Array<[number, string, number[]]> = [[p1, 'r1', [p2]], [p2, 'r2', [p1, p3]], [p3, 'r3', [p2]]]
  for (const [i, [port, name, peers]] of plan.entries()) {
    daemons.push(await startDaemon(t, ['--port', String(port), '--data', dirs[i] as string, '--name', name, '--sync-interval', '1', ...peers.flatMap((p) => ['--peer', url(p)])]))
  }
  // The far router's offer is the newer one: without hop counts, the newest would win.
  const near = await join({ room: 'hops', routerUrl: url(p2), rtc, poster: fetchPoster, peerId: 'nearnearnearnear', target: 0, pool: 1 })
  t.after(() => near.leave())
  await new Promise((r) => setTimeout(r, 50))
  const far = await join({ room: 'hops', routerUrl: url(p3), rtc, poster: fetchPoster, peerId: 'farfarfarfarfarf', target: 0, pool: 1 })
  t.after(() => far.leave())
  const me = await join({ room: 'hops', routerUrl: url(p1), rtc, poster: fetchPoster, peerId: 'memememememememe', target: 0, pool: 0 })
  t.after(() => me.leave())
  const links = async () => (await (await fetch(`${url(p1)}/malla/v1/tables/malla-links`)).json()) as Record<string, { data?: { n?: string[] } }>
  await until(async () => {
    const l = await links()
    return (l.r1?.data?.n ?? []).includes('r2') && (l.r3?.data?.n ?? []).includes('r2')
  }, () => 'r1 holds the links of r1 and r3')
  await until(async () => (await openOffersSeen(me, near.id)) === 1 && (await openOffersSeen(me, far.id)) === 1, () => 'both offers reached r1')
  me.mesh.setTarget(1)
  await until(() => me.mesh.stats().connected === 1, () => JSON.stringify(me.mesh.stats()))
  assert.equal(me.mesh.peers()[0]?.id, near.id, 'the offer one hop away, not the newer one two hops away')
})

test('a connection that ends from the far side: the offers that peer had out are not answered (a closed tab leaves them behind)', async (t) => {
  const d = await testRouter(t)
  const a = await peer(t, d.base, 'aaaaaaaaaaaaaaaa', { target: 1, pool: 2 })
  const b = await peer(t, d.base, 'bbbbbbbbbbbbbbbb', { target: 1, pool: 0 })
  await until(() => a.mesh.stats().connected === 1 && b.mesh.stats().connected === 1, () => `A ${JSON.stringify(a.mesh.stats())} B ${JSON.stringify(b.mesh.stats())}`)
  // A keeps one offer out past its target (for newcomers); B has seen it.
  await until(async () => (await openOffersSeen(b, a.id)) >= 1, () => 'B holds an offer of A')
  const seen = await b.mesh.view()
  const before = new Set(seen.offers.filter((o) => o.record !== 'withdrawn' && o.record.kind === 'offer' && o.record.peer === a.id).map((o) => o.key))
  // B's answer of the connection itself stays in the table a while: only answers written after the close count.
  const oldAnswers = new Map(seen.answers.map((x) => [x.key, x.record.expiresAt]))
  const closed = new Promise((resolve) => b.mesh.on('peer-closed', resolve))
  a.mesh.peers()[0]?.close()
  await closed
  // B is below its target now: it answers offers, but none of those A had out before the close.
  b.mesh.setTarget(2)
  const started = Date.now()
  while (Date.now() - started < 2500) {
    const answers = (await b.mesh.view()).answers.filter((x) => x.record.peer === b.id && oldAnswers.get(x.key) !== x.record.expiresAt)
    assert.ok(!answers.some((x) => before.has(x.record.offer)), `B answered an offer A had out before the close: ${JSON.stringify(answers)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  // A is alive: they meet again on a new offer.
  await until(() => b.mesh.stats().connected === 1, () => `B ${JSON.stringify(b.mesh.stats())}`)
})
