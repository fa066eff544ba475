import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { WriteClock } from '../../src/core/clock.js'
import { compareMallaEntries } from '../../src/core/order.js'
import { bleachTable, type Changes, insertEntries, mergeTable, removeKeys } from '../../src/core/table-ops.js'
import type { Entry, Json, Table } from '../../src/core/types.js'

/** The keys and touched flag of a change report (written and deleted are checked on their own). */
const kt = (c: { keys: readonly string[]; touched: boolean }) => ({ keys: c.keys, touched: c.touched })

/*
 * Small domains on purpose: few keys, authors, clocks, TTLs and values, so that copies of one key
 * collide on clock, on clock and author, and on clock, author and TTL, and every tiebreak is exercised.
 * Data includes the same object with its keys in two orders, which must count as one value.
 */
const KEYS = ['a', 'b', 'c', 'd'] as const
const AUTHORS = ['A', 'B', 'C'] as const

const keyArb = fc.constantFrom(...KEYS)
const authorArb = fc.constantFrom(...AUTHORS)
const clockArb = fc.constantFrom('1', '2', '3', '10', '11', '100')
const ttlArb = fc.integer({ min: 1, max: 4 })
const dataArb: fc.Arbitrary<Json> = fc.constantFrom<Json>(
  null,
  0,
  1,
  'x',
  'y',
  true,
  [],
  [1, 2],
  { x: 1, y: 2 },
  { y: 2, x: 1 },
  { x: 2 },
)

// fast-check's records may have a null prototype; entries from JSON never do, and deepEqual tells them apart.
const mallaEntryArb: fc.Arbitrary<Entry> = fc.record(
  { data: dataArb, author: authorArb, bleachTTL: ttlArb, clock: clockArb },
  { noNullPrototype: true },
)
const mallaTableArb: fc.Arbitrary<Table> = fc
  .array(fc.tuple(keyArb, mallaEntryArb), { maxLength: 6 })
  .map((pairs) => new Map(pairs))

/** Merge as a binary operation on tables: neither argument is changed. */
function merged(a: Table, b: Table): Table {
  const out = new Map(a)
  mergeTable(out, b)
  return out
}

const RUNS = 400

describe('merge of malla tables is a join', () => {
  it('is commutative', () => {
    fc.assert(
      fc.property(mallaTableArb, mallaTableArb, (a, b) => {
        assert.deepEqual(merged(a, b), merged(b, a))
      }),
      { numRuns: RUNS },
    )
  })

  it('is associative', () => {
    fc.assert(
      fc.property(mallaTableArb, mallaTableArb, mallaTableArb, (a, b, c) => {
        assert.deepEqual(merged(merged(a, b), c), merged(a, merged(b, c)))
      }),
      { numRuns: RUNS },
    )
  })

  it('is idempotent, and merging the same table again changes nothing', () => {
    fc.assert(
      fc.property(mallaTableArb, mallaTableArb, (a, b) => {
        assert.deepEqual(merged(a, a), a)
        const ab = merged(a, b)
        const again = new Map(ab)
        assert.deepEqual(kt(mergeTable(again, b)), { keys: [], touched: false })
        assert.deepEqual(again, ab)
      }),
      { numRuns: RUNS },
    )
  })

  it('keeps, for every key, the greatest copy in the malla order', () => {
    fc.assert(
      fc.property(mallaTableArb, mallaTableArb, (a, b) => {
        const ab = merged(a, b)
        assert.deepEqual([...ab.keys()].sort(), [...new Set([...a.keys(), ...b.keys()])].sort())
        for (const [key, entry] of ab) {
          for (const copy of [a.get(key), b.get(key)]) {
            if (copy !== undefined) assert.ok(compareMallaEntries(entry, copy) >= 0, key)
          }
        }
      }),
      { numRuns: RUNS },
    )
  })
})

/* A network of replicas, each a plain table with its own author and write clock on a fake wall clock. */

type Command =
  | { readonly op: 'insert'; readonly at: number; readonly key: string; readonly data: Json; readonly ttl: number }
  | { readonly op: 'remove'; readonly at: number; readonly key: string }
  | { readonly op: 'bleach'; readonly at: number }
  | { readonly op: 'merge'; readonly at: number; readonly from: number }
  | { readonly op: 'time'; readonly at: number; readonly ms: number }

interface SimReplica {
  readonly table: Table
  readonly clock: WriteClock
  readonly author: string
  now: number
}

function commandArb(replicas: number): fc.Arbitrary<Command> {
  const at = fc.integer({ min: 0, max: replicas - 1 })
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('insert' as const), at, key: keyArb, data: dataArb, ttl: ttlArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), at, key: keyArb }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('bleach' as const), at }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('merge' as const), at, from: at }) },
    // Wall clocks that stand still, jump ahead, or are stepped back: clocks collide across replicas.
    { weight: 2, arbitrary: fc.record({ op: fc.constant('time' as const), at, ms: fc.integer({ min: -5, max: 5 }) }) },
  )
}

const scenarioArb = fc.integer({ min: 3, max: 4 }).chain((n) =>
  fc.record({
    // Authors may repeat (two routers with one hostname): then only TTL and data can break ties.
    authors: fc.array(authorArb, { minLength: n, maxLength: n }),
    commands: fc.array(commandArb(n), { maxLength: 40 }),
  }),
)

function simulate(authors: readonly string[], commands: readonly Command[]): SimReplica[] {
  const replicas: SimReplica[] = authors.map((author) => {
    const r: SimReplica = { table: new Map(), author, now: 100, clock: new WriteClock(() => r.now) }
    return r
  })
  const at = (i: number): SimReplica => replicas[i] as SimReplica
  for (const c of commands) {
    const r = at(c.at)
    const ctx = { author: r.author, clock: r.clock }
    switch (c.op) {
      case 'insert':
        insertEntries(r.table, [[c.key, c.data]], c.ttl, ctx)
        break
      case 'remove':
        removeKeys(r.table, [c.key], 3, ctx)
        break
      case 'bleach':
        bleachTable(r.table)
        break
      case 'merge':
        mergeTable(r.table, new Map(at(c.from).table), r.clock)
        break
      case 'time':
        r.now += c.ms
        break
    }
  }
  return replicas
}

/** Merges every replica from every other until a whole round changes nothing; returns the rounds it took. */
function syncToFixpoint(replicas: readonly SimReplica[], maxRounds = 10): number {
  for (let round = 1; round <= maxRounds; round++) {
    let touched = false
    for (const r of replicas) {
      for (const other of replicas) {
        if (other !== r) touched = mergeTable(r.table, new Map(other.table), r.clock).touched || touched
      }
    }
    if (!touched) return round
  }
  assert.fail(`no fixpoint after ${maxRounds} rounds`)
}

describe('a network of malla replicas converges', () => {
  it('ends identical after sync rounds, each key holding the greatest surviving copy', () => {
    fc.assert(
      fc.property(scenarioArb, ({ authors, commands }) => {
        const replicas = simulate(authors, commands)
        const surviving = new Map<string, Entry[]>()
        for (const r of replicas) {
          for (const [key, entry] of r.table) surviving.set(key, [...(surviving.get(key) ?? []), entry])
        }
        const rounds = syncToFixpoint(replicas)
        // Every copy reaches every replica directly in one round; the second round only confirms.
        assert.ok(rounds <= 2, `took ${rounds} rounds`)
        const first = (replicas[0] as SimReplica).table
        for (const r of replicas) assert.deepEqual(r.table, first)
        assert.deepEqual([...first.keys()].sort(), [...surviving.keys()].sort())
        for (const [key, copies] of surviving) {
          const greatest = copies.reduce((max, e) => (compareMallaEntries(e, max) > 0 ? e : max))
          assert.deepEqual(first.get(key), greatest, key)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('orders a write made after a merge above everything that merge brought in', () => {
    fc.assert(
      fc.property(scenarioArb, keyArb, dataArb, ({ authors, commands }, key, data) => {
        const replicas = simulate(authors, commands)
        syncToFixpoint(replicas)
        // Any replica writing now, whatever its wall clock says, must win everywhere.
        const writer = replicas[replicas.length - 1] as SimReplica
        writer.now -= 1000
        insertEntries(writer.table, [[key, data]], 1, { author: writer.author, clock: writer.clock })
        const written = writer.table.get(key)
        syncToFixpoint(replicas)
        for (const r of replicas) assert.equal(r.table.get(key), written)
      }),
      { numRuns: 200 },
    )
  })
})

/* The substantial-change report, against a direct comparison of the tables before and after. */

const anyEntryArb: fc.Arbitrary<Entry> = fc.oneof(
  mallaEntryArb,
  // Plain LibreMesh entries, TTL 0 and below included (a remote may send them; merge must ignore them).
  fc.record({ data: dataArb, author: authorArb, bleachTTL: fc.integer({ min: -1, max: 4 }) }, { noNullPrototype: true }),
)
const anyTableArb: fc.Arbitrary<Table> = fc.array(fc.tuple(keyArb, anyEntryArb), { maxLength: 6 }).map((p) => new Map(p))

type TableOp =
  | { readonly op: 'insert'; readonly values: ReadonlyArray<readonly [string, Json]>; readonly author: string }
  | { readonly op: 'remove'; readonly keys: readonly string[]; readonly author: string }
  | { readonly op: 'merge'; readonly remote: Table }
  | { readonly op: 'bleach' }

const tableOpArb: fc.Arbitrary<TableOp> = fc.oneof(
  fc.record({
    op: fc.constant('insert' as const),
    values: fc.uniqueArray(fc.tuple(keyArb, dataArb), { selector: ([k]) => k, maxLength: 4 }),
    author: authorArb,
  }),
  fc.record({ op: fc.constant('remove' as const), keys: fc.uniqueArray(keyArb, { maxLength: 4 }), author: authorArb }),
  fc.record({ op: fc.constant('merge' as const), remote: anyTableArb }),
  fc.constant({ op: 'bleach' as const }),
)

function apply(table: Table, op: TableOp): Changes {
  const clock = new WriteClock(() => 50)
  switch (op.op) {
    case 'insert':
      return insertEntries(table, op.values, 5, { author: op.author, clock })
    case 'remove':
      return removeKeys(table, op.keys, 5, { author: op.author, clock })
    case 'merge':
      return mergeTable(table, op.remote, clock)
    case 'bleach':
      return bleachTable(table)
  }
}

describe('the change report', () => {
  it('names exactly the keys whose presence, data or author changed, once each', () => {
    fc.assert(
      fc.property(anyTableArb, tableOpArb, (table, op) => {
        const before = new Map(table)
        const changes = apply(table, op)
        const expected = [...new Set([...before.keys(), ...table.keys()])].filter((key) => {
          const b = before.get(key)
          const a = table.get(key)
          if (b === undefined || a === undefined) return b !== a
          return b.author !== a.author || !isDeepStrictEqual(b.data, a.data)
        })
        assert.deepEqual(changes.keys.slice().sort(), expected.sort())
        assert.equal(changes.touched, !isDeepStrictEqual(before, table))
      }),
      { numRuns: 500 },
    )
  })
})
