import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Actions, type ActionPeer, type DataPayload, type MessageContext } from '../../src/browser/trystero/actions.js'
import { Reassembly } from '../../src/browser/trystero/reassembly.js'
import { DATA, dataFrames, decodeFrame, MAX_FRAME_BYTES, utf8, type FirstChunk, type NextChunk } from '../../src/browser/trystero/wire.js'

/** Actions of several peers wired to each other in memory: a frame sent is received by the other side. */
function mesh(ids: readonly string[]): Map<string, Actions> {
  const all = new Map<string, Actions>()
  for (const id of ids) {
    const peers = new Map<string, ActionPeer>()
    for (const other of ids) if (other !== id) peers.set(other, { send: async (frame) => all.get(other)?.receive(id, frame.slice()) })
    all.set(id, new Actions({ peers: () => peers }))
  }
  return all
}

function collect(actions: Actions, name: string): Array<[DataPayload, MessageContext]> {
  const got: Array<[DataPayload, MessageContext]> = []
  actions.make(name).onMessage = (data, context) => void got.push([data, context])
  return got
}

/** Handlers run on a later microtask: lets them. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0))

test('action names: up to 32 UTF-8 bytes, as in Trystero 0.25', () => {
  const [a] = [...mesh(['a', 'b']).values()] as [Actions]
  assert.doesNotThrow(() => a.make('x'.repeat(32)))
  assert.throws(() => a.make('x'.repeat(33)), { name: 'MallaError', code: 'BAD_INPUT', message: /33 bytes.*32/ })
  // 11 characters, 33 bytes: the limit counts bytes, not characters.
  assert.throws(() => a.make('€'.repeat(11)), { code: 'BAD_INPUT' })
  assert.doesNotThrow(() => a.make('€'.repeat(10)))
  assert.throws(() => a.make(''), { code: 'BAD_INPUT' })
  assert.throws(() => a.make('req', { kind: 'request' } as never), { code: 'BAD_INPUT', message: /message actions only/ })
  assert.equal(a.make('same'), a.make('same'), 'one action per name')
})

test('values keep their type; metadata travels with each message', async () => {
  const m = mesh(['a', 'b'])
  const a = m.get('a') as Actions
  const got = collect(m.get('b') as Actions, 'thing')
  const send = a.make('thing').send
  await send({ drink: 'negroni', withIce: true })
  await send('plain text', { metadata: { lang: 'en' } })
  await send(42)
  await send(null)
  await send('')
  await send(new Uint8Array([1, 2, 3]), { metadata: { name: 'three.bin', type: 'application/octet-stream' } })
  await send(new Uint16Array([0x0102]).buffer)
  await send(new Blob([new Uint8Array([9, 8])]))
  await settle()
  assert.deepEqual(
    got.map(([d, c]) => [d instanceof Uint8Array ? [...d] : d, c]),
    [
      [{ drink: 'negroni', withIce: true }, { peerId: 'a' }],
      ['plain text', { peerId: 'a', metadata: { lang: 'en' } }],
      [42, { peerId: 'a' }],
      [null, { peerId: 'a' }],
      ['', { peerId: 'a' }],
      [[1, 2, 3], { peerId: 'a', metadata: { name: 'three.bin', type: 'application/octet-stream' } }],
      [[...new Uint8Array(new Uint16Array([0x0102]).buffer)], { peerId: 'a' }],
      [[9, 8], { peerId: 'a' }],
    ],
  )
  await assert.rejects(send(undefined as never), { code: 'BAD_INPUT' })
  await assert.rejects(send('x', { metadata: 'm'.repeat(5000) }), { code: 'BAD_INPUT', message: /metadata/ })
})

test('a large payload goes in chunks, with progress on both sides reaching 1', async () => {
  const m = mesh(['a', 'b'])
  const got = collect(m.get('b') as Actions, 'file')
  const received: number[] = []
  ;(m.get('b') as Actions).make('file').onReceiveProgress = (p, c) => {
    assert.deepEqual(c, { peerId: 'a', metadata: { name: 'big' } })
    received.push(p)
  }
  const payload = new Uint8Array(200_000).map((_, i) => (i * 7) % 251)
  const sent: number[] = []
  await (m.get('a') as Actions).make('file').send(payload, { metadata: { name: 'big' }, onProgress: (p, c) => (assert.equal(c.peerId, 'b'), sent.push(p)) })
  await settle()
  const chunks = Math.ceil(200_000 / (MAX_FRAME_BYTES - 64))
  assert.ok(sent.length >= chunks && received.length === sent.length, `${sent.length} chunks sent, ${received.length} received`)
  assert.equal(sent.at(-1), 1)
  assert.equal(received.at(-1), 1)
  assert.deepEqual(received, [...received].sort((x, y) => x - y), 'progress only grows')
  assert.ok((received[0] as number) < 0.1)
  assert.equal(got.length, 1)
  assert.deepEqual(got[0]?.[0], payload)
  assert.equal((m.get('b') as Actions).reserved(), 0, 'nothing held once delivered')
})

test('targeted sends reach only their targets; a target not connected is skipped', async () => {
  const m = mesh(['a', 'b', 'c'])
  const b = collect(m.get('b') as Actions, 'name')
  const c = collect(m.get('c') as Actions, 'name')
  const send = (m.get('a') as Actions).make('name').send
  await send('to b', { target: 'b' })
  await send('to c', { target: ['c'] })
  await send('to nobody', { target: ['zzzzzzzz'] })
  await send('to all', { target: null })
  await send('to both')
  await settle()
  assert.deepEqual(b.map(([d]) => d), ['to b', 'to all', 'to both'])
  assert.deepEqual(c.map(([d]) => d), ['to c', 'to all', 'to both'])
})

test('messages that come before onMessage is set are kept (a bounded number) and delivered when it is', async () => {
  const m = mesh(['a', 'b'])
  const late = (m.get('b') as Actions).make('late')
  const send = (m.get('a') as Actions).make('late').send
  for (let i = 0; i < 40; i++) await send(i)
  const got: DataPayload[] = []
  late.onMessage = (d) => void got.push(d)
  await settle()
  assert.deepEqual(got, Array.from({ length: 32 }, (_, i) => i + 8), 'the last 32')
})

test('the action also destructures as Trystero\'s older [send, receive, onProgress]', async () => {
  const m = mesh(['a', 'b', 'c'])
  const [send] = (m.get('a') as Actions).make<string>('old')
  const [, receive, onProgress] = (m.get('b') as Actions).make<string>('old')
  const got: unknown[] = []
  const progress: unknown[] = []
  receive((data, peerId, metadata) => got.push([data, peerId, metadata]))
  onProgress((p, peerId, metadata) => progress.push([p, peerId, metadata]))
  collect(m.get('c') as Actions, 'old')
  const sentTo: string[] = []
  await send('hi', 'b', { n: 1 }, (p, peerId) => sentTo.push(`${p}@${peerId}`))
  await settle()
  assert.deepEqual(got, [['hi', 'a', { n: 1 }]])
  assert.deepEqual(progress, [[1, 'a', { n: 1 }]])
  assert.deepEqual(sentTo, ['1@b'])
})

test('ping answers with the round trip; a peer not connected is an error', async () => {
  const m = mesh(['a', 'b'])
  const ms = await (m.get('a') as Actions).ping('b')
  assert.equal(typeof ms, 'number')
  assert.ok(ms >= 0 && ms < 1000)
  await assert.rejects((m.get('a') as Actions).ping('c'), { code: 'PEER' })
})

/** Frames as a hostile peer would write them. */
const first = (id: number, total: number, bytes = new Uint8Array(0), last = false): FirstChunk => ({ type: 'data', first: true, last, id, kind: 'binary', total, name: 'file', meta: undefined, bytes })
const next = (id: number, bytes: Uint8Array, last = false): NextChunk => ({ type: 'data', first: false, last, id, bytes })
const KB = new Uint8Array(1024)

test('reassembly: a huge declared size is refused at once and holds nothing', () => {
  const r = new Reassembly({ maxMessageBytes: 1024 * 1024 })
  assert.deepEqual(r.chunk('evil', first(1, 0xffff_ffff, KB)), { t: 'dropped', why: 'too-large' })
  // And every chunk after it: the transfer was never taken.
  for (let i = 0; i < 1000; i++) assert.equal(r.chunk('evil', next(1, KB)).t, 'dropped')
  assert.equal(r.reserved(), 0)
  assert.equal(r.dropped['too-large'], 1)
  assert.equal(r.dropped.unknown, 1000)
})

test('reassembly: endless chunks past the declared size end the transfer', () => {
  const r = new Reassembly()
  assert.equal(r.chunk('evil', first(1, 4096, KB)).t, 'progress')
  for (let i = 0; i < 3; i++) assert.equal(r.chunk('evil', next(1, KB)).t, 'progress')
  assert.deepEqual(r.chunk('evil', next(1, KB)), { t: 'dropped', why: 'overrun' })
  for (let i = 0; i < 10_000; i++) r.chunk('evil', next(1, KB))
  assert.equal(r.reserved(), 0)
  assert.equal(r.transfers('evil'), 0)
  // A "last" chunk that leaves the payload short is not delivered.
  r.chunk('evil', first(2, 4096, KB))
  assert.deepEqual(r.chunk('evil', next(2, KB, true)), { t: 'dropped', why: 'short' })
  assert.equal(r.reserved(), 0)
})

test('reassembly: per-peer transfers and bytes, and the page\'s total, are capped; others still get through', () => {
  let now = 0
  const r = new Reassembly({ maxMessageBytes: 1000, maxPeerBytes: 3000, maxTotalBytes: 5000, maxPeerTransfers: 4, idleMs: 10_000 }, () => now)
  for (let id = 1; id <= 3; id++) assert.equal(r.chunk('evil', first(id, 1000)).t, 'progress')
  assert.deepEqual(r.chunk('evil', first(4, 1000)), { t: 'dropped', why: 'peer-budget' })
  assert.equal(r.chunk('evil', first(5, 1)).t, 'dropped', 'the budget counts declared bytes, not received ones')
  assert.equal(r.reserved('evil'), 3000)
  const small = new Reassembly({ maxPeerTransfers: 4 })
  for (let id = 1; id <= 4; id++) small.chunk('evil', first(id, 10))
  assert.deepEqual(small.chunk('evil', first(5, 10)), { t: 'dropped', why: 'too-many' })
  // A second hostile peer fills the rest of the page's budget; a third peer is refused until someone's idle transfers go.
  r.chunk('evil2', first(1, 1000))
  r.chunk('evil2', first(2, 1000))
  assert.equal(r.reserved(), 5000)
  assert.deepEqual(r.chunk('good', first(1, 10)), { t: 'dropped', why: 'total-budget' })
  now = 5000
  r.chunk('evil2', next(1, new Uint8Array(10)))
  now = 12_000
  // evil's transfers and evil2's second were idle 10 s or more: dropped; evil2's first got a chunk at 5 s, kept.
  const ok = r.chunk('good', first(1, 10, new Uint8Array(10), true))
  assert.equal(ok.t, 'done')
  assert.equal(r.reserved(), 1000)
  assert.equal(r.transfers('evil'), 0)
  r.forget('evil2')
  assert.equal(r.reserved(), 0)
})

test('a hostile peer\'s frames cost a page no memory beyond its limits, and honest peers still get through', async () => {
  const peers = new Map<string, ActionPeer>()
  const page = new Actions({ peers: () => peers, limits: { maxMessageBytes: 64 * 1024, maxPeerBytes: 128 * 1024, maxTotalBytes: 256 * 1024 } })
  const got = collect(page, 'file')
  const name = utf8('file')
  // Declares 4 GiB, then streams chunks of it.
  const [head] = dataFrames(1, 'binary', name, undefined, new Uint8Array(100))
  const huge = (head as Uint8Array).slice()
  new DataView(huge.buffer).setUint32(6, 0xffff_ffff)
  huge[1] = (huge[1] as number) & ~2 // not the last chunk
  page.receive('evil', huge)
  const cont = new Uint8Array(MAX_FRAME_BYTES)
  cont[0] = DATA
  new DataView(cont.buffer).setUint32(2, 1)
  for (let i = 0; i < 2000; i++) page.receive('evil', cont) // 32 MB of chunks
  // Opens many transfers, each under the size limit, and never finishes them.
  for (let id = 2; id < 200; id++) page.receive('evil', dataFrames(id, 'binary', name, undefined, new Uint8Array(60 * 1024))[0] as Uint8Array)
  assert.ok(page.reserved('evil') <= 128 * 1024, `evil holds ${page.reserved('evil')}`)
  // Garbage of every shape.
  for (const junk of [new Uint8Array(0), new Uint8Array([1]), new Uint8Array([9, 0, 0, 0, 0]), new Uint8Array(MAX_FRAME_BYTES + 1)]) page.receive('evil', junk)
  assert.ok(decodeFrame(new Uint8Array([2, 0, 0, 0, 1, 0])) === undefined)
  // An honest peer's message still arrives.
  for (const f of dataFrames(1, 'binary', name, undefined, new Uint8Array(50_000).fill(7))) page.receive('good', f)
  await settle()
  assert.equal(got.length, 1)
  assert.equal(got[0]?.[1].peerId, 'good')
  assert.ok(page.dropped['too-large']! >= 1 && page.dropped.unknown! >= 2000 && page.dropped['peer-budget']! >= 1, JSON.stringify(page.dropped))
  page.forget('evil')
  assert.equal(page.reserved(), 0)
})
