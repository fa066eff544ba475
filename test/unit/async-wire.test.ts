import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeFrame, checkDataLength, checkNameLength, checkVersion, u32, readU32, ASYNC_DATA_MAX_BYTES } from '../../src/sync/async/async-frames.js'
import { decodeSlice, EMPTY_SLICE, encodeSlice } from '../../src/sync/async/state-slice.js'
import { TtlBridge } from '../../src/sync/async/ttl-bridge.js'
import type { Entry } from '../../src/core/types.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

test('golden frame: the 31-byte read of bat-hosts and its acknowledgement, as shared-state-async sends them', () => {
  const frame = encodeFrame('bat-hosts', EMPTY_SLICE)
  assert.equal(frame.length, 31)
  assert.equal(hex(frame), '09' + Buffer.from('bat-hosts').toString('hex') + '00000011' + Buffer.from('{"stateSlice":[]}').toString('hex'))
  assert.equal(hex(u32(frame.length)), '0000001f')
  assert.equal(hex(u32(1)), '00000001')
})

test('golden slice: an entry serialised with the C++ member names, int64 as {xint64, xstr64}', () => {
  const text = encodeSlice([['probe-key-1', { author: 'lenovo-i7', ttl: 331, data: { hostname: 'testhost', n: 42 } }]])
  assert.equal(text, '{"stateSlice":[{"key":"probe-key-1","value":{"mAuthor":"lenovo-i7","mTtl":{"xint64":331,"xstr64":"331"},"mData":{"hostname":"testhost","n":42}}}]}')
  const back = decodeSlice(text)
  assert.deepEqual(back.get('probe-key-1'), { author: 'lenovo-i7', ttl: 331, data: { hostname: 'testhost', n: 42 } })
  // Keys in std::map order, whatever order they were given in.
  assert.match(encodeSlice([['b', { author: 'x', ttl: 1, data: 1 }], ['a', { author: 'x', ttl: 1, data: 2 }]]), /"key":"a".*"key":"b"/)
})

test('decoding reads xint64 as libretroshare does, and refuses what the C++ daemon could not have sent', () => {
  const one = (value: unknown) => JSON.stringify({ stateSlice: [{ key: 'k', value }] })
  assert.equal(decodeSlice(one({ mAuthor: 'a', mTtl: { xint64: 200, xstr64: '777' }, mData: 1 })).get('k')?.ttl, 200)
  assert.equal(decodeSlice(one({ mAuthor: 'a', mTtl: { xstr64: '77' }, mData: 1 })).get('k')?.ttl, 77)
  assert.equal(decodeSlice(one({ mAuthor: 'a', mTtl: 5 })).get('k')?.data, null)
  assert.equal(decodeSlice(EMPTY_SLICE).size, 0)
  for (const bad of ['[]', '{"stateSlice":{}}', one({ mTtl: 5 }), one({ mAuthor: 'a', mTtl: 'x' }), one({ mAuthor: 'a', mTtl: { xint64: 1.5 } }), one({ mAuthor: 'a', mTtl: 2 ** 40 }), 'not json', '[['.repeat(100)]) {
    assert.throws(() => decodeSlice(bad), { code: 'PEER' }, bad.slice(0, 60))
  }
  let deep: unknown = 1
  for (let i = 0; i < 35; i++) deep = [deep]
  assert.throws(() => decodeSlice(one({ mAuthor: 'a', mTtl: 5, mData: deep })), { code: 'PEER' })
})

test('frame bounds are the C++ daemon\'s: names of 1 to 128 bytes, data of 2 bytes to 1 MiB, version 1', () => {
  assert.equal(checkNameLength(128), 128)
  assert.throws(() => checkNameLength(0), { code: 'PEER' })
  assert.throws(() => checkNameLength(129), { code: 'PEER' })
  assert.equal(checkDataLength(2), 2)
  assert.throws(() => checkDataLength(1), { code: 'PEER' })
  assert.throws(() => checkDataLength(ASYNC_DATA_MAX_BYTES + 1), { code: 'PEER' })
  assert.throws(() => checkVersion(u32(2)), { code: 'PEER' })
  assert.equal(readU32(Uint8Array.of(0, 0, 1, 0)), 256)
  assert.throws(() => encodeFrame('x'.repeat(129), EMPTY_SLICE), { code: 'BAD_INPUT' })
  assert.throws(() => encodeFrame('t', 'x'.repeat(ASYNC_DATA_MAX_BYTES + 1)), { code: 'TOO_LARGE' })
})

/** A bridge on a clock the test moves, bleach interval 120 s (malla's default). */
function bridgeAt(self = 'M') {
  let now = 1_000_000
  const bridge = new TtlBridge({ self, bleachIntervalMs: 120_000, now: () => now })
  return { bridge, advance: (ms: number) => (now += ms), now: () => now }
}

test('TTL out: bleach rounds become the seconds the entry has left here, falling by one a second', () => {
  const { bridge, advance } = bridgeAt()
  const entry: Entry = { data: 1, author: 'X', bleachTTL: 20 }
  assert.equal(bridge.secondsLeft('t', 'k', entry), 2400)
  advance(30_000)
  assert.equal(bridge.secondsLeft('t', 'k', entry), 2370)
  bridge.bleached()
  assert.equal(bridge.secondsLeft('t', 'k', { ...entry, bleachTTL: 19 }), 2280)
})

test('TTL in: seconds become rounds that never give the entry back more seconds than it came with', () => {
  const { bridge, advance } = bridgeAt()
  for (const [elapsed, seconds] of [[0, 2431], [45_000, 2431], [119_000, 100], [0, 119], [60_000, 5000]] as const) {
    advance(elapsed)
    const { remote, choose } = bridge.importSlice('t', new Map([['k', { author: 'C', ttl: seconds, data: 'v' }]]))
    const stored = choose('k', remote.get('k') as Entry, undefined) as Entry
    assert.ok(stored.bleachTTL >= 1)
    // Seen from another bridge (no exact memory), the stored rounds never mean more seconds than arrived.
    const other = new TtlBridge({ self: 'N', bleachIntervalMs: 120_000, now: () => 0 })
    other.bleached(-(elapsed % 120_000))
    if (seconds >= 120) assert.ok(other.secondsLeft('t', 'k', stored) <= seconds, `${seconds} s came back as ${other.secondsLeft('t', 'k', stored)}`)
    // Here, the exact seconds are kept.
    assert.equal(bridge.secondsLeft('t', 'k', stored), seconds)
  }
})

test('TTL rule: strictly more seconds wins, an equal TTL never replaces, a stale echo never replaces a newer write', () => {
  const { bridge, advance } = bridgeAt()
  const take = (key: string, author: string, ttl: number, data: unknown, ours: Entry | undefined) => {
    const { remote, choose } = bridge.importSlice('t', new Map([[key, { author, ttl, data: data as never }]]))
    const theirs = remote.get(key)
    return theirs === undefined ? undefined : choose(key, theirs, ours)
  }
  const newer = take('k', 'C', 2431, 'new', undefined) as Entry
  advance(20_000)
  // The older write, bleached longer on its way: fewer seconds than the newer one has here now.
  assert.equal(take('k', 'C', 2405, 'old', newer), undefined)
  // The same seconds as the copy held: kept (shared-state-async itself would take it).
  assert.equal(take('k', 'C', 2411, 'other', newer), undefined)
  // More seconds and other data: a later write. It gets a round more than the copy it replaces, so that
  // Lua routers and malla nodes, which compare rounds, take it too.
  const later = take('k', 'C', 2412, 'later', newer) as Entry
  assert.equal(later.data, 'later')
  assert.ok(later.bleachTTL > newer.bleachTTL)
  // Copies of this node's own writes never come in from the network.
  assert.equal(take('mine', 'M', 9999, 'x', undefined), undefined)
})

test('TTL rule: writes under this node\'s name from this machine are LibreMesh CLI inserts, taken as own writes', () => {
  const { bridge } = bridgeAt()
  const slice = new Map([['k', { author: 'M', ttl: 2431, data: 'v' as never }]])
  assert.deepEqual(bridge.importSlice('t', slice, false).ownWrites, [])
  assert.deepEqual(bridge.importSlice('t', slice, true).ownWrites, [['k', 'v', 20]])
})

test('TTL out: a clocked malla entry loses its clock on the way; an exact deadline is forgotten once the key changes', () => {
  const { bridge } = bridgeAt()
  const { remote, choose } = bridge.importSlice('t', new Map([['k', { author: 'C', ttl: 2431, data: 'v' as never }]]))
  const stored = choose('k', remote.get('k') as Entry, undefined) as Entry
  const table = new Map<string, Entry>([['k', stored], ['m', { data: { a: 1 }, author: 'M', bleachTTL: 30, clock: '17' }]])
  const out = new Map(bridge.exportTable('t', table))
  assert.deepEqual(out.get('k'), { author: 'C', ttl: 2431, data: 'v' })
  assert.deepEqual(out.get('m'), { author: 'M', ttl: 3600, data: { a: 1 } })
  assert.ok(!encodeSlice(out).includes('clock'))
  // Replaced by a write here: its seconds are its rounds again.
  table.set('k', { data: 'w', author: 'M', bleachTTL: 30, clock: '18' })
  assert.equal(new Map(bridge.exportTable('t', table)).get('k')?.ttl, 3600)
})

test('TTL out: of two malla writes within one bleach interval, the later has more seconds, as a later C++ insert would', () => {
  const { bridge, advance } = bridgeAt()
  const first: Entry = { data: { v: 1 }, author: 'B', bleachTTL: 30, clock: '5' }
  bridge.observe('t', 'k', first)
  advance(40_000)
  const second: Entry = { data: { v: 2 }, author: 'B', bleachTTL: 30, clock: '6' }
  assert.equal(bridge.secondsLeft('t', 'k', first), 3560)
  bridge.observe('t', 'k', second)
  assert.equal(bridge.secondsLeft('t', 'k', second), 3600)
  // A bleach copy of the write keeps its deadline.
  advance(10_000)
  bridge.bleached()
  assert.equal(bridge.secondsLeft('t', 'k', { ...second, bleachTTL: 29 }), 3590)
})

test('TTL rule: a copy without its clock never replaces a malla write of the same author with other data', () => {
  const { bridge } = bridgeAt()
  const ours: Entry = { data: 'new', author: 'B', bleachTTL: 30, clock: '9' }
  bridge.observe('t', 'k', ours)
  const { remote, choose } = bridge.importSlice('t', new Map([['k', { author: 'B', ttl: 99_999, data: 'old' as never }]]))
  assert.equal(choose('k', remote.get('k') as Entry, ours), undefined)
  // Another author's copy is judged by its seconds.
  const other = bridge.importSlice('t', new Map([['k', { author: 'C', ttl: 99_999, data: 'c' as never }]]))
  assert.equal(other.choose('k', other.remote.get('k') as Entry, ours)?.data, 'c')
})
