import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Entry } from '../../src/core/types.js'
import { Replica } from '../../src/replica/replica.js'
import { Mesh, type MeshOptions } from '../../src/signaling/mesh.js'
import { signalTypes } from '../../src/signaling/signal-records.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { FakeRtcNetwork } from '../helpers/fake-rtc.js'

type TestContext = { after(fn: () => unknown): void }

/**
 * Meshes over replicas in memory, joined as through one router (each replica's own entries reach every other;
 * a leaf sends nothing else), and over fake RTC (test/helpers/fake-rtc.ts): the races of docs/protocol.md §12.3
 * made to happen on purpose, in milliseconds.
 */
function world(t: TestContext, ids: readonly string[], options: (id: string) => Partial<MeshOptions> = () => ({})) {
  const net = new FakeRtcNetwork()
  /** `from>to` pairs whose entries no longer reach each other (a partition, one way). */
  const cut = new Set<string>()
  const replicas = ids.map((id) => new Replica({ store: new MemoryStore(), author: id }))
  for (const r of replicas) {
    r.on('applied', (e) => {
      const own = new Map<string, Entry>()
      for (const key of e.keys) {
        const entry = e.table.get(key) as Entry | undefined
        if (entry?.author === r.author) own.set(key, entry)
      }
      if (own.size === 0) return
      for (const other of replicas) if (other !== r && !cut.has(`${r.author}>${other.author}`)) void other.mergeInto({ flavour: e.flavour, type: e.type }, own, 'router')
    })
  }
  const meshes = ids.map((id, i) => new Mesh({ room: 'races', replica: replicas[i] as Replica, rtc: net.factory(), connectTimeoutMs: 2000, ...options(id) }))
  t.after(() => Promise.all(meshes.map((m) => m.close())))
  return { net, meshes, cut, replicas }
}

async function until(ok: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what()}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const ids = (m: Mesh) =>
  m
    .peers()
    .map((p) => p.id)
    .sort()

test('three peers with target 2 connect pairwise: one connection per pair, each seen from both ends', async (t) => {
  const { meshes } = world(t, ['aaaaaaaa', 'bbbbbbbb', 'cccccccc'], () => ({ target: 2, max: 2, pool: 2 }))
  for (const m of meshes) m.start()
  await until(
    () => meshes.every((m) => m.stats().connected === 2),
    () => meshes.map((m) => m.stats().connected).join(','),
  )
  for (const m of meshes) assert.deepEqual(ids(m), ['aaaaaaaa', 'bbbbbbbb', 'cccccccc'].filter((id) => id !== m.id))
  // At max, every offer is withdrawn: nothing but the two connections is left open on any peer.
  await until(
    () => meshes.every((m) => m.stats().openOffers === 0 && m.stats().peerConnections === 2),
    () => JSON.stringify(meshes.map((m) => m.stats())),
  )
})

test('glare: two peers answer each other at once, and exactly one connection survives, the same at both ends', async (t) => {
  // Both publish one offer, then both look for a connection at the same moment: each answers the other's offer.
  const { meshes } = world(t, ['aaaaaaaa', 'bbbbbbbb'], () => ({ target: 0, max: 2, pool: 1 }))
  const [a, b] = meshes as [Mesh, Mesh]
  a.start()
  b.start()
  await until(
    () => a.stats().openOffers === 1 && b.stats().openOffers === 1,
    () => 'both offers published',
  )
  await new Promise((r) => setTimeout(r, 50))
  a.setTarget(1)
  b.setTarget(1)
  // Well within the connect timeout (2 s): the glare rule settled it, not a timeout and a second try.
  await until(
    () => a.stats().connected === 1 && b.stats().connected === 1,
    () => `${a.stats().connected},${b.stats().connected}`,
    1000,
  )
  assert.ok(a.stats().glare + b.stats().glare >= 1, 'the glare was seen')
  await new Promise((r) => setTimeout(r, 200))
  assert.deepEqual([ids(a), ids(b)], [['bbbbbbbb'], ['aaaaaaaa']])
  assert.equal(a.peers()[0]?.offerer, !b.peers()[0]?.offerer, 'one end offered, the other answered')
  // The attempt kept is the one on the offer of the lower id: A offered it.
  assert.equal(a.peers()[0]?.offerer, true)
})

test('two answers to one offer: the offerer takes the lower id, the other gives up at once and connects through the next offer', async (t) => {
  const { meshes, cut, replicas } = world(t, ['aaaaaaaa', 'bbbbbbbb', 'cccccccc'], (id) => (id === 'aaaaaaaa' ? { target: 0, max: 4, pool: 1 } : { target: 0, max: 2, pool: 0 }))
  const [a, b, c] = meshes as [Mesh, Mesh, Mesh]
  for (const m of meshes) m.start()
  const offersOfA = async (m: Mesh) => (await m.view()).offers.filter((o) => o.record !== 'withdrawn' && o.record.kind === 'offer' && o.record.peer === a.id).length
  let seen = false
  while (!seen) {
    seen = (await offersOfA(b)) === 1 && (await offersOfA(c)) === 1
    await new Promise((r) => setTimeout(r, 5))
  }
  // Both answer A's one offer; A gets both answers in one look at the tables (held back, then merged together).
  cut.add('bbbbbbbb>aaaaaaaa')
  cut.add('cccccccc>aaaaaaaa')
  c.setTarget(1)
  b.setTarget(1)
  await until(
    () => b.stats().pendingAnswers === 1 && c.stats().pendingAnswers === 1,
    () => 'both answered',
  )
  const answers = signalTypes('races').answers
  const both = new Map<string, object>()
  for (const r of replicas.slice(1)) for (const [k, e] of (await r.read({ flavour: 'ttl', type: answers })).table) if ((e as Entry).author === r.author) both.set(k, e)
  assert.equal(both.size, 2)
  cut.clear()
  await (replicas[0] as Replica).mergeInto({ flavour: 'ttl', type: answers }, both, 'router')
  await until(
    () => a.stats().connected === 1,
    () => 'A connected',
  )
  assert.deepEqual(ids(a), ['bbbbbbbb'], 'the lower answerer id won')
  await until(
    () => c.stats().racesLost >= 1 && c.stats().pendingAnswers === 0,
    () => `C gave up: ${JSON.stringify(c.stats())}`,
    1000,
  )
  // A publishes a new offer in the place of the one taken; C answers it.
  await until(
    () => a.stats().connected === 2 && c.stats().connected === 1,
    () => JSON.stringify(meshes.map((m) => m.stats())),
  )
  assert.deepEqual(ids(a), ['bbbbbbbb', 'cccccccc'])
})

test('an answer whose offerer never takes it ends at the connect timeout; that offer is not answered again, and the next attempt waits a while', async (t) => {
  let now = Date.now()
  const { meshes, cut } = world(t, ['aaaaaaaa', 'bbbbbbbb'], (id) => (id === 'aaaaaaaa' ? { target: 1, pool: 2 } : { target: 1, pool: 0, now: () => now }))
  const [a, b] = meshes as [Mesh, Mesh]
  // Nothing of B's reaches A: its answers are never taken.
  cut.add('bbbbbbbb>aaaaaaaa')
  a.start()
  await until(
    () => a.stats().openOffers === 2,
    () => 'A offered twice',
  )
  await new Promise((r) => setTimeout(r, 20))
  b.start()
  await until(
    () => b.stats().pendingAnswers === 1,
    () => 'B answered',
  )
  // B's clock passes the connect timeout: at its next look it gives up, and remembers the offer as failed.
  now += 3000
  b.setTarget(1)
  await until(
    () => b.stats().pendingAnswers === 0,
    () => JSON.stringify(b.stats()),
  )
  // A failure in a row: no new attempt for 500 ms of B's clock, although A's other offer is there.
  await new Promise((r) => setTimeout(r, 100))
  b.setTarget(1)
  await new Promise((r) => setTimeout(r, 100))
  assert.deepEqual([b.stats().pendingAnswers, b.stats().connected, b.stats().peerConnections], [0, 0, 0], 'no attempt while calm, and the failed one is closed')
  now += 600
  b.setTarget(1)
  await until(
    () => b.stats().pendingAnswers === 1,
    () => `B answered A's other offer: ${JSON.stringify(b.stats())}`,
  )
  const answered = (await b.view()).answers.filter((x) => x.record.peer === b.id).map((x) => x.record.offer)
  assert.equal(new Set(answered).size, answered.length)
  assert.equal(a.stats().openOffers, 2, "A's offers are still there")
})

test('after attempts fail, a peer keeps one offer and runs one attempt at a time, until one opens', async (t) => {
  let now = Date.now()
  const others = ['aaaaaaa1', 'aaaaaaa2', 'aaaaaaa3', 'aaaaaaa4', 'aaaaaaa5', 'aaaaaaa6']
  // The others each keep one offer and answer nothing (target 0); B wants 3 connections and offers 3.
  const { meshes, cut } = world(t, [...others, 'bbbbbbbb'], (id) => (id === 'bbbbbbbb' ? { target: 3, pool: 3, now: () => now } : { target: 0, pool: 1 }))
  const b = meshes[others.length] as Mesh
  // Nothing of B's reaches the others: its answers are never taken, so each attempt fails at the connect timeout.
  for (const o of others) cut.add(`bbbbbbbb>${o}`)
  for (const m of meshes.slice(0, others.length)) m.start()
  await until(
    () => meshes.slice(0, others.length).every((m) => m.stats().openOffers === 1),
    () => 'every other peer offered',
  )
  b.start()
  await until(
    () => b.stats().pendingAnswers === 3 && b.stats().openOffers === 3,
    () => `B answers three offers at once and offers three: ${JSON.stringify(b.stats())}`,
  )
  // The three answers pass the connect timeout (2 s here) together: three failures in a row.
  now += 2500
  b.setTarget(3)
  await until(
    () => b.stats().pendingAnswers === 0 && b.stats().openOffers === 1,
    () => `B gave up and kept one offer: ${JSON.stringify(b.stats())}`,
  )
  // Past the calm pause, three offers it has not tried are there, and it still wants 3 connections: it answers one.
  now += 10_000
  b.setTarget(3)
  await until(
    () => b.stats().pendingAnswers === 1,
    () => `B answered again: ${JSON.stringify(b.stats())}`,
  )
  for (let i = 0; i < 5; i++) {
    b.setTarget(3)
    await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual([b.stats().pendingAnswers, b.stats().openOffers], [1, 1], 'one answer and one offer at a time')
  }
})

test('a connection whose certificate is not the one the other end\'s description named is closed, and counted', async (t) => {
  const { net, meshes } = world(t, ['aaaaaaaa', 'bbbbbbbb'], (id) => ({
    target: 1,
    max: 1,
    pool: 1,
    // Every connection B makes shows a certificate other than the one its descriptions name, as when something
    // between the two rewrote them (the stack itself would refuse; this is the mesh's own check).
    ...(id === 'bbbbbbbb' ? { rtc: (o) => { const p = net.factory()(o); net.impostors.add(p as never); return p } } : {}),
  }))
  const [a, b] = meshes as [Mesh, Mesh]
  // What an app hears (the web app warns the person): each mismatch, with the peer at the other end.
  const heard: string[] = []
  a.on('certificate-mismatch', (peer) => heard.push(peer))
  a.start()
  b.start()
  await until(() => a.stats().certificateMismatch >= 2, () => JSON.stringify(a.stats()))
  assert.deepEqual(heard, Array(a.stats().certificateMismatch).fill('bbbbbbbb'))
  assert.equal(a.stats().connected, 0)
  assert.ok(a.stats().failed >= a.stats().certificateMismatch)
  assert.equal(b.stats().certificateMismatch, 0)
  // B saw nothing wrong on its side; A's close ends whatever opened there too.
  await until(() => b.stats().connected === 0, () => JSON.stringify(b.stats()))
})
