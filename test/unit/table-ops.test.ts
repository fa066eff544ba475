import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compareClocks, WriteClock } from '../../src/core/clock.js'
import { compareMallaEntries, remoteWins, remoteWinsMultiWriter } from '../../src/core/order.js'
import { parseTable, serializeTable } from '../../src/core/schema.js'
import {
  bleachTable,
  DEFAULT_TTL,
  insertEntries,
  insertMultiWriter,
  mergeMultiWriter,
  mergeTable,
  removeKeys,
  type MultiWriterContext,
  type WriteContext,
} from '../../src/core/table-ops.js'
import type { Entry, Json, MultiWriterEntry, MultiWriterTable, Table } from '../../src/core/types.js'
import { DEMO_TABLE, SYNC_ANSWER, SYNC_FROM_W2 } from './lua-wire-fixtures.js'

/** The keys and touched flag of a change report (written and deleted are checked on their own). */
const kt = (c: { keys: readonly string[]; touched: boolean }) => ({ keys: c.keys, touched: c.touched })

/** A writer whose wall clock stands still at `start`: its clock values are start, start+1, ... */
function writer(author: string, start = 1000): WriteContext {
  return { author, clock: new WriteClock(() => start) }
}

const table = (entries: Record<string, Entry>): Table => new Map(Object.entries(entries))
const plain = (data: Json, author: string, bleachTTL: number): Entry => ({ data, author, bleachTTL })
const clocked = (data: Json, author: string, bleachTTL: number, clock: string): Entry => ({ data, author, bleachTTL, clock })

describe('insertEntries', () => {
  it('uses 30 as the default TTL, as LibreMesh does', () => {
    assert.equal(DEFAULT_TTL, 30)
    const t: Table = new Map()
    insertEntries(t, [['k', 1]], DEFAULT_TTL, writer('A'))
    assert.equal(t.get('k')?.bleachTTL, 30)
  })

  it('writes data, this node as author, the given TTL and a clock', () => {
    const t: Table = new Map()
    const changes = insertEntries(t, [['a', { x: [1, 'two'] }], ['b', 'bee']], 7, writer('node-A'))
    assert.deepEqual(kt(changes), { keys: ['a', 'b'], touched: true })
    assert.deepEqual(t.get('a'), { data: { x: [1, 'two'] }, author: 'node-A', bleachTTL: 7, clock: '1000' })
    assert.deepEqual(t.get('b'), { data: 'bee', author: 'node-A', bleachTTL: 7, clock: '1001' })
  })

  it('overwrites another author\'s entry and reports it as a substantial change even with the same data', () => {
    const t = table({ k: clocked('v', 'B', 3, '5') })
    const changes = insertEntries(t, [['k', 'v']], 30, writer('A'))
    assert.deepEqual(changes.keys, ['k'])
    assert.equal(t.get('k')?.author, 'A')
    assert.equal(t.get('k')?.bleachTTL, 30)
  })

  it('gives every write a strictly greater clock, within one call and across calls', () => {
    const ctx = writer('A', 50)
    const t: Table = new Map()
    insertEntries(t, [['a', 1], ['b', 2], ['c', 3]], 30, ctx)
    const first = ['a', 'b', 'c'].map((k) => t.get(k)?.clock as string)
    insertEntries(t, [['a', 1]], 30, ctx)
    const again = t.get('a')?.clock as string
    const all = [...first, again]
    for (let i = 1; i < all.length; i++) assert.ok(compareClocks(all[i - 1] as string, all[i] as string) < 0, `${all.join(',')}`)
  })

  it('reports a new key, not a re-insert of the same data, and a change of data', () => {
    const ctx = writer('A')
    const t: Table = new Map()
    assert.deepEqual(kt(insertEntries(t, [['k', { a: 1, b: 2 }]], 30, ctx)), { keys: ['k'], touched: true })
    const before = t.get('k')
    // Same data (key order does not matter) by the same author: the TTL and clock are refreshed, nothing substantial.
    assert.deepEqual(kt(insertEntries(t, [['k', { b: 2, a: 1 }]], 30, ctx)), { keys: [], touched: true })
    assert.notEqual(t.get('k')?.clock, before?.clock)
    assert.deepEqual(kt(insertEntries(t, [['k', { a: 1, b: 3 }]], 30, ctx)), { keys: ['k'], touched: true })
    assert.deepEqual(t.get('k')?.data, { a: 1, b: 3 })
  })

  it('accepts a custom TTL per call', () => {
    const t: Table = new Map()
    insertEntries(t, [['short', 1]], 2, writer('A'))
    insertEntries(t, [['long', 1]], 1000, writer('A'))
    assert.equal(t.get('short')?.bleachTTL, 2)
    assert.equal(t.get('long')?.bleachTTL, 1000)
  })

  it('changes nothing when given nothing', () => {
    const t = table({ k: clocked(1, 'A', 3, '1') })
    assert.deepEqual(kt(insertEntries(t, [], 30, writer('A'))), { keys: [], touched: false })
    assert.deepEqual(t.get('k'), clocked(1, 'A', 3, '1'))
  })
})

describe('removeKeys', () => {
  it('turns a key holding data into {data: null} by this node with a fresh TTL and clock', () => {
    const t = table({ k: clocked('v', 'B', 4, '10'), other: clocked('o', 'B', 4, '11') })
    const changes = removeKeys(t, ['k'], 30, writer('A', 2000))
    assert.deepEqual(kt(changes), { keys: ['k'], touched: true })
    assert.deepEqual(t.get('k'), { data: null, author: 'A', bleachTTL: 30, clock: '2000' })
    assert.deepEqual(t.get('other'), clocked('o', 'B', 4, '11'))
  })

  it('leaves absent keys absent: removing does not create entries', () => {
    const t = table({ k: clocked('v', 'B', 4, '10') })
    assert.deepEqual(kt(removeKeys(t, ['nope', 'missing'], 30, writer('A'))), { keys: [], touched: false })
    assert.equal(t.has('nope'), false)
    assert.equal(t.has('missing'), false)
    assert.equal(t.size, 1)
  })

  it('leaves an already removed key alone: its TTL is not refreshed', () => {
    const gone = clocked(null, 'B', 3, '10')
    const t = table({ gone })
    assert.deepEqual(kt(removeKeys(t, ['gone'], 30, writer('A'))), { keys: [], touched: false })
    assert.equal(t.get('gone'), gone)
  })

  it('removes plain LibreMesh entries too, giving them a clock', () => {
    const t = table({ k: plain([1, 2], 'W1', 12) })
    removeKeys(t, ['k'], 9, writer('A', 77))
    assert.deepEqual(t.get('k'), { data: null, author: 'A', bleachTTL: 9, clock: '77' })
  })
})

describe('mergeTable, LibreMesh rule (entries without clock)', () => {
  it('replaces a local entry only with a strictly higher bleachTTL', () => {
    const t = table({ lower: plain('old', 'A', 5), tie: plain('mine', 'A', 10), higher: plain('mine', 'A', 20) })
    const remote = table({ lower: plain('new', 'B', 6), tie: plain('theirs', 'B', 10), higher: plain('theirs', 'B', 19) })
    const changes = mergeTable(t, remote)
    assert.deepEqual(kt(changes), { keys: ['lower'], touched: true })
    assert.deepEqual(t.get('lower'), plain('new', 'B', 6))
    assert.deepEqual(t.get('tie'), plain('mine', 'A', 10))
    assert.deepEqual(t.get('higher'), plain('mine', 'A', 20))
  })

  it('adds keys the local table lacks', () => {
    const t: Table = new Map()
    assert.deepEqual(kt(mergeTable(t, table({ k: plain(1, 'B', 1) }))), { keys: ['k'], touched: true })
    assert.deepEqual(t.get('k'), plain(1, 'B', 1))
  })

  it('ignores remote entries whose bleachTTL is 0 or negative, even for keys it lacks', () => {
    const t = table({ k: plain('mine', 'A', 1) })
    const remote = table({ k: plain('theirs', 'B', 0), zero: plain(1, 'B', 0), negative: plain(1, 'B', -5) })
    assert.deepEqual(kt(mergeTable(t, remote)), { keys: [], touched: false })
    assert.deepEqual([...t.keys()], ['k'])
    assert.equal(t.get('k')?.data, 'mine')
  })

  it('keeps the winning remote entry whole, extra fields included', () => {
    const received: Entry = { data: 'newer', author: 'W2', bleachTTL: 31, v: 7, note: { deep: [1] } }
    const t = table({ k: plain('old', 'W1', 30) })
    mergeTable(t, table({ k: received }))
    assert.deepEqual(t.get('k'), { data: 'newer', author: 'W2', bleachTTL: 31, v: 7, note: { deep: [1] } })
  })

  it('reports a TTL-only win as touched but not substantial', () => {
    const t = table({ k: plain('same', 'A', 3) })
    assert.deepEqual(kt(mergeTable(t, table({ k: plain('same', 'A', 9) }))), { keys: [], touched: true })
    assert.equal(t.get('k')?.bleachTTL, 9)
  })

  it('reproduces the recorded Lua router exchange: higher TTL replaces, lower is ignored, TTL 0 is dropped', () => {
    const local = parseTable(JSON.parse(DEMO_TABLE))
    const changes = mergeTable(local, parseTable(JSON.parse(SYNC_FROM_W2)))
    assert.deepEqual(changes.keys, ['hello'])
    assert.deepEqual(local, parseTable(JSON.parse(SYNC_ANSWER)))
    // malla writes the removed entry as `"data": null` where json-c omits it; both parse to the same table.
    assert.deepEqual(parseTable(JSON.parse(serializeTable(local))), parseTable(JSON.parse(SYNC_ANSWER)))
  })

  it('LibreMesh fault 1 still applies without clocks: a stale copy bleached fewer times overwrites newer data', () => {
    // Router A wrote "v2" a while ago (bleached down to 20); router B still holds "v1", bleached less (25).
    const a = table({ k: plain('v2', 'A', 20) })
    mergeTable(a, table({ k: plain('v1', 'A', 25) }))
    assert.equal(a.get('k')?.data, 'v1')
  })

  it('LibreMesh fault 2 still applies without clocks: two different entries with equal TTL never converge', () => {
    const a = table({ k: plain('from A', 'A', 30) })
    const b = table({ k: plain('from B', 'B', 30) })
    for (let round = 0; round < 3; round++) {
      mergeTable(a, new Map(b))
      mergeTable(b, new Map(a))
    }
    assert.equal(a.get('k')?.data, 'from A')
    assert.equal(b.get('k')?.data, 'from B')
  })

  it('applies the LibreMesh rule when only one side has a clock', () => {
    const local = table({ k: clocked('clocked', 'A', 10, '999') })
    mergeTable(local, table({ k: plain('plain', 'W1', 11) }))
    assert.equal(local.get('k')?.data, 'plain')
    const local2 = table({ k: plain('plain', 'W1', 10) })
    mergeTable(local2, table({ k: clocked('clocked', 'A', 10, '999') }))
    assert.equal(local2.get('k')?.data, 'plain')
  })
})

describe('mergeTable, malla rule (both entries clocked)', () => {
  it('fixes fault 1: the higher clock wins even with a lower TTL', () => {
    const a = table({ k: clocked('v2', 'A', 20, '200') })
    assert.deepEqual(kt(mergeTable(a, table({ k: clocked('v1', 'A', 25, '100') }))), { keys: [], touched: false })
    assert.equal(a.get('k')?.data, 'v2')
    const b = table({ k: clocked('v1', 'A', 25, '100') })
    assert.deepEqual(kt(mergeTable(b, table({ k: clocked('v2', 'A', 20, '200') }))), { keys: ['k'], touched: true })
    assert.equal(b.get('k')?.data, 'v2')
  })

  it('compares clocks as numbers, not as text', () => {
    const t = table({ k: clocked('nine', 'A', 30, '9') })
    mergeTable(t, table({ k: clocked('ten', 'A', 1, '10') }))
    assert.equal(t.get('k')?.data, 'ten')
  })

  it('fixes fault 2: two different entries with equal TTL converge, whichever side merges first', () => {
    const fromA = clocked('from A', 'A', 30, '500')
    const fromB = clocked('from B', 'B', 30, '500')
    const a = table({ k: fromA })
    const b = table({ k: fromB })
    mergeTable(a, new Map(b))
    mergeTable(b, new Map(a))
    assert.deepEqual(a, b)
    // Equal clocks: the greater author wins.
    assert.equal(a.get('k'), fromB)
  })

  it('breaks an equal clock by author, then bleachTTL, then canonical data', () => {
    const base = clocked('m', 'M', 10, '7')
    const cases: Array<[Entry, boolean]> = [
      [clocked('m', 'N', 1, '7'), true], // greater author, lower TTL
      [clocked('m', 'L', 99, '7'), false], // smaller author, higher TTL
      [clocked('m', 'M', 11, '7'), true], // same write, fresher copy
      [clocked('m', 'M', 9, '7'), false],
      [clocked('n', 'M', 10, '7'), true], // same clock, author, TTL: data decides
      [clocked('l', 'M', 10, '7'), false],
    ]
    for (const [remote, wins] of cases) {
      assert.equal(remoteWins(remote, base), wins, JSON.stringify(remote))
      assert.equal(remoteWins(base, remote), !wins, JSON.stringify(remote))
      const t = table({ k: base })
      mergeTable(t, table({ k: remote }))
      assert.equal(t.get('k'), wins ? remote : base)
    }
  })

  it('orders data by its canonical form, so key order does not matter and ties are total', () => {
    const x = clocked({ b: 1, a: 2 }, 'A', 5, '1')
    const y = clocked({ a: 2, b: 1 }, 'A', 5, '1')
    assert.equal(compareMallaEntries(x, y), 0)
    const t = table({ k: x })
    assert.deepEqual(kt(mergeTable(t, table({ k: y }))), { keys: [], touched: false })
    assert.equal(t.get('k'), x)
    // Different data under the same clock, author and TTL: exactly one direction wins.
    const p = clocked([1, 2], 'A', 5, '1')
    const q = clocked({ a: 1 }, 'A', 5, '1')
    assert.equal(remoteWins(p, q) !== remoteWins(q, p), true)
  })

  it('ignores a clocked remote entry with bleachTTL 0 even when its clock is higher', () => {
    const t = table({ k: clocked('mine', 'A', 5, '1') })
    assert.deepEqual(kt(mergeTable(t, table({ k: clocked('theirs', 'B', 0, '99') }))), { keys: [], touched: false })
    assert.equal(t.get('k')?.data, 'mine')
  })

  it('raises the local clock past every clock it merges, so a later local write wins', () => {
    const clock = new WriteClock(() => 100)
    const t: Table = new Map()
    mergeTable(t, table({ k: clocked('remote', 'Z', 30, '5000') }), clock)
    insertEntries(t, [['k', 'local']], 30, { author: 'A', clock })
    assert.equal(t.get('k')?.data, 'local')
    const remoteCopy = table({ k: clocked('remote', 'Z', 30, '5000') })
    mergeTable(remoteCopy, t)
    assert.equal(remoteCopy.get('k')?.data, 'local')
  })
})

describe('what an operation wrote and deleted (for incremental saves)', () => {
  it('lists every key written, TTL-only replacements included, and the keys bleach dropped', () => {
    const t = table({ same: clocked('x', 'B', 5, '10'), old: clocked('o', 'B', 5, '10'), dying: plain(1, 'B', 1) })
    const m = mergeTable(t, table({ same: clocked('x', 'B', 9, '10'), old: clocked('n', 'B', 5, '11'), lower: clocked('l', 'B', 3, '9') }))
    assert.deepEqual([[...m.written].sort(), m.deleted, m.keys], [['lower', 'old', 'same'], [], ['old', 'lower']])
    const ins = insertEntries(t, [['a', 1], ['same', 'x']], 30, writer('A'))
    assert.deepEqual([ins.written, ins.deleted], [['a', 'same'], []])
    const b = bleachTable(t)
    assert.deepEqual(b.deleted, ['dying'])
    assert.deepEqual([...b.written].sort(), ['a', 'lower', 'old', 'same'])
    assert.deepEqual(removeKeys(t, ['missing'], 30, writer('A')).written, [])
  })
})

describe('bleachTable', () => {
  it('decrements every TTL and drops entries below 2, reporting the dropped keys', () => {
    const t = table({
      one: clocked('x', 'A', 1, '1'),
      two: clocked('y', 'A', 2, '2'),
      many: plain('z', 'W1', 30),
      gone: plain(null, 'W1', 1),
    })
    const changes = bleachTable(t)
    assert.deepEqual(changes.keys.slice().sort(), ['gone', 'one'])
    assert.equal(changes.touched, true)
    assert.deepEqual(t, table({ two: clocked('y', 'A', 1, '2'), many: plain('z', 'W1', 29) }))
  })

  it('reports a TTL-only change as touched with no keys', () => {
    const t = table({ k: clocked('x', 'A', 5, '1') })
    assert.deepEqual(kt(bleachTable(t)), { keys: [], touched: true })
    assert.equal(t.get('k')?.bleachTTL, 4)
  })

  it('keeps extra fields of the entries it decrements', () => {
    const t = table({ k: { data: 1, author: 'W2', bleachTTL: 3, v: 7 } })
    bleachTable(t)
    assert.deepEqual(t.get('k'), { data: 1, author: 'W2', bleachTTL: 2, v: 7 })
  })

  it('leaves an entry with TTL n for exactly n bleaches', () => {
    const t = table({ k: clocked('x', 'A', 3, '1') })
    bleachTable(t)
    bleachTable(t)
    assert.equal(t.has('k'), true)
    assert.deepEqual(bleachTable(t).keys, ['k'])
    assert.equal(t.size, 0)
  })

  it('does not touch an empty table', () => {
    assert.deepEqual(kt(bleachTable(new Map())), { keys: [], touched: false })
  })
})

describe('multi-writer tables', () => {
  const ctx = (author: string, random: number, now = 1_700_000_000.7): MultiWriterContext => ({
    author,
    random: () => random,
    nowSeconds: () => now,
  })
  const mw = (data: Json, author: string, changes: number, fortune: number): MultiWriterEntry => ({ data, author, changes, fortune })

  it('inserts a new key with changes 0, a fortune in 1..100000 and lastModified in whole seconds', () => {
    const t: MultiWriterTable = new Map()
    assert.deepEqual(kt(insertMultiWriter(t, [['k', 'v']], ctx('A', 0.5))), { keys: ['k'], touched: true })
    assert.deepEqual(t.get('k'), { data: 'v', author: 'A', changes: 0, fortune: 50001, lastModified: 1_700_000_000 })
    insertMultiWriter(t, [['low', 1]], ctx('A', 0))
    insertMultiWriter(t, [['high', 1]], ctx('A', 0.9999999))
    assert.equal(t.get('low')?.fortune, 1)
    assert.equal(t.get('high')?.fortune, 100000)
  })

  it('counts changes per key and draws a new fortune on every change', () => {
    const t: MultiWriterTable = new Map([['k', mw('v0', 'B', 4, 10)]])
    assert.deepEqual(kt(insertMultiWriter(t, [['k', 'v1']], ctx('A', 0.25))), { keys: ['k'], touched: true })
    assert.equal(t.get('k')?.changes, 5)
    assert.equal(t.get('k')?.fortune, 25001)
    assert.equal(t.get('k')?.author, 'A')
  })

  it('does nothing when the key already holds the same data', () => {
    const existing = mw({ a: 1, b: [2] }, 'B', 3, 99)
    const t: MultiWriterTable = new Map([['k', existing]])
    assert.deepEqual(kt(insertMultiWriter(t, [['k', { b: [2], a: 1 }]], ctx('A', 0.5))), { keys: [], touched: false })
    assert.equal(t.get('k'), existing)
  })

  it('merges by changes first, then fortune', () => {
    const t: MultiWriterTable = new Map([
      ['more', mw('mine', 'A', 1, 99999)],
      ['fewer', mw('mine', 'A', 3, 1)],
      ['fortune', mw('mine', 'A', 2, 50)],
      ['unlucky', mw('mine', 'A', 2, 50)],
    ])
    const remote: MultiWriterTable = new Map([
      ['more', mw('theirs', 'B', 2, 1)],
      ['fewer', mw('theirs', 'B', 2, 99999)],
      ['fortune', mw('theirs', 'B', 2, 51)],
      ['unlucky', mw('theirs', 'B', 2, 49)],
      ['new', mw('theirs', 'B', 0, 1)],
    ])
    const changes = mergeMultiWriter(t, remote)
    assert.deepEqual(changes.keys.slice().sort(), ['fortune', 'more', 'new'])
    assert.equal(t.get('more')?.data, 'theirs')
    assert.equal(t.get('fewer')?.data, 'mine')
    assert.equal(t.get('fortune')?.data, 'theirs')
    assert.equal(t.get('unlucky')?.data, 'mine')
    assert.equal(t.get('new')?.data, 'theirs')
  })

  it('breaks a full tie of changes and fortune by author and data, the same way on both sides', () => {
    for (const [x, y] of [
      [mw('same', 'A', 2, 7), mw('same', 'B', 2, 7)],
      [mw('aaa', 'A', 2, 7), mw('bbb', 'A', 2, 7)],
    ] as const) {
      assert.equal(remoteWinsMultiWriter(y, x), true)
      assert.equal(remoteWinsMultiWriter(x, y), false)
      const left: MultiWriterTable = new Map([['k', x]])
      const right: MultiWriterTable = new Map([['k', y]])
      mergeMultiWriter(left, new Map(right))
      mergeMultiWriter(right, new Map(left))
      assert.deepEqual(left, right)
      assert.equal(left.get('k'), y)
    }
  })

  it('leaves an identical copy alone', () => {
    const e = mw('v', 'A', 1, 5)
    const t: MultiWriterTable = new Map([['k', e]])
    assert.deepEqual(kt(mergeMultiWriter(t, new Map([['k', { ...e }]]))), { keys: [], touched: false })
    assert.equal(t.get('k'), e)
  })
})
