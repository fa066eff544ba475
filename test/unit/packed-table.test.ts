import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { PackedTable, type PackOptions } from '../../src/core/packed-table.js'
import { DEFLATE_TEXT } from '../../src/node/daemon/table-packing.js'
import { serializeTable, serializeTableChunks } from '../../src/core/schema.js'
import { bleachTable } from '../../src/core/table-ops.js'
import type { Entry, Json, Table, TypeName } from '../../src/core/types.js'
import { DraftTable } from '../../src/replica/draft-table.js'
import { Replica } from '../../src/replica/replica.js'
import { MemoryStore } from '../../src/storage/memory-store.js'

/** JSON as it comes back from text (no -0, no undefined): what a table can hold. */
const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as Json)
const keys = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', '0', '7', 'ключ', '__proto__')
const entry: fc.Arbitrary<Entry> = fc
  .record({
    data: fc.oneof(json, fc.constant(null), fc.string({ unit: 'grapheme' })),
    author: fc.constantFrom('router-a', 'router-b', 'lm-ñandú'),
    bleachTTL: fc.integer({ min: -5, max: 60 }),
    clock: fc.option(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 53n - 2n }).map(String), fc.constantFrom('007', '1e3', 'x')), { nil: undefined }),
    extra: fc.option(fc.tuple(fc.constantFrom('note', '__proto__', 'hops'), json), { nil: undefined }),
  })
  .map(({ clock, extra, ...rest }) => {
    const e: Record<string, unknown> = { ...rest }
    if (clock !== undefined) e.clock = clock
    if (extra !== undefined) Object.defineProperty(e, extra[0], { value: extra[1], enumerable: true, writable: true, configurable: true })
    return e as unknown as Entry
  })
const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: keys, entry }),
  fc.record({ kind: fc.constant('delete' as const), key: keys }),
)

function applyOps(base: ReadonlyMap<string, Entry>, ops: ReadonlyArray<{ kind: 'set' | 'delete'; key: string; entry?: Entry }>): DraftTable<Entry> {
  const draft = new DraftTable(base)
  for (const o of ops) {
    if (o.kind === 'set') draft.set(o.key, o.entry as Entry)
    else draft.delete(o.key)
  }
  return draft
}

/** The packed table reads exactly as `expected` does: same keys in the same order, same entries, same text. */
function assertSameTable(packed: PackedTable, expected: ReadonlyMap<string, Entry>): void {
  assert.equal(packed.size, expected.size)
  assert.deepEqual([...packed.keys()], [...expected.keys()])
  assert.deepEqual([...packed], [...expected])
  for (const [key, e] of expected) {
    assert.equal(packed.has(key), true)
    assert.deepEqual(packed.get(key), e)
    assert.deepEqual(JSON.parse(packed.entryJson(key) as string), JSON.parse(JSON.stringify(e)), `entryJson of ${key}`)
    assert.equal(packed.entryJson(key), JSON.stringify(packed.get(key)), 'entryJson is the text of the entry get makes')
  }
  assert.equal(packed.get('absent'), undefined)
  assert.equal(packed.entryJson('absent'), undefined)
  assert.deepEqual(JSON.parse(serializeTable(packed)), JSON.parse(serializeTable(expected as Table)))
  assert.equal([...serializeTableChunks(packed, 64)].join(''), serializeTable(packed))
}

/**
 * The layouts every property runs against: the default (plain text in chunks of 8 Ki characters), and chunks
 * of 64 characters whose data is deflated when half full, as the daemon's are, so that tables of a few
 * entries meet many chunks, compressed ones, and chunks left behind or written again.
 */
const LAYOUTS: ReadonlyArray<readonly [string, PackOptions]> = [
  ['plain chunks', {}],
  ['small deflated chunks', { codec: DEFLATE_TEXT, chunkChars: 64 }],
]

for (const [layout, options] of LAYOUTS) describe(`PackedTable, ${layout}`, () => {
  it('reads like the Map a draft materializes, whatever the entries (extra fields, odd clocks, non-ASCII, "__proto__"), over a Map or a packed base', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(keys, entry)), fc.array(op, { maxLength: 25 }), fc.boolean(), (start, ops, packedBase) => {
        const map = new Map(start)
        const base = packedBase ? PackedTable.pack(map, options) : map
        assertSameTable(base instanceof PackedTable ? base : PackedTable.pack(base, options), map)
        const draft = applyOps(base, ops)
        const expected = applyOps(map, ops).materialize()
        assertSameTable(PackedTable.fold(base, draft.changes(), draft.movedKeys, options), expected)
        // The base is never changed by a fold.
        assertSameTable(base instanceof PackedTable ? base : PackedTable.pack(base, options), map)
      }),
      { numRuns: 300 },
    )
  })

  it('finds every key it holds and no other, whatever the keys (any UTF-16, lone surrogates, prefixes of each other), across folds', () => {
    const anyKey = fc.string({ unit: 'binary', maxLength: 6 })
    fc.assert(
      fc.property(fc.uniqueArray(anyKey, { maxLength: 60 }), fc.uniqueArray(anyKey, { maxLength: 30 }), fc.array(anyKey, { maxLength: 20 }), (start, added, probes) => {
        const e = (i: number): Entry => ({ data: i, author: 'r', bleachTTL: 5 })
        const map = new Map(start.map((k, i) => [k, e(i)]))
        let table = PackedTable.pack(map, options)
        const changes = new Map<string, Entry | undefined>(added.map((k, i) => [k, i % 3 === 0 ? undefined : e(100 + i)]))
        table = PackedTable.fold(table, changes, new Set())
        const expected = applyOps(map, [...changes].map(([key, entry]) => (entry === undefined ? { kind: 'delete' as const, key } : { kind: 'set' as const, key, entry }))).materialize()
        assert.deepEqual([...table.keys()], [...expected.keys()])
        for (const key of [...start, ...added, ...probes]) {
          assert.equal(table.has(key), expected.has(key), JSON.stringify(key))
          assert.deepEqual(table.get(key), expected.get(key))
        }
      }),
      { numRuns: 300 },
    )
  })

  it('bleaches like bleachTable without reading data: every TTL one less, entries below 2 dropped and named', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(keys, entry)), (start) => {
        const map = new Map(start)
        const packed = PackedTable.pack(map, options)
        const expected = new Map(map)
        const changes = bleachTable(expected)
        const { table, dropped } = packed.bleached()
        assertSameTable(table, expected)
        assert.deepEqual(dropped.sort(), [...changes.deleted].sort())
        assertSameTable(packed, map)
      }),
      { numRuns: 200 },
    )
  })

  it('keeps each entry\'s hash across folds and bleaches, and makes it again for an entry that changed', () => {
    const made: string[] = []
    const hash = (key: string) => (e: Entry) => {
      made.push(key)
      return BigInt(JSON.stringify(e.data).length + 1)
    }
    let table = PackedTable.pack(new Map<string, Entry>([['a', { data: 'x', author: 'r', bleachTTL: 9 }], ['b', { data: 'yy', author: 'r', bleachTTL: 9 }]]), options)
    assert.equal(table.cachedHash('a', hash('a')), 4n)
    assert.equal(table.cachedHash('b', hash('b')), 5n)
    table = PackedTable.fold(table, new Map([['b', { data: 'zzzz', author: 'r', bleachTTL: 9 }]]), new Set())
    table = table.bleached().table
    assert.equal(table.cachedHash('a', hash('a')), 4n)
    assert.equal(table.cachedHash('b', hash('b')), 7n)
    assert.equal(table.cachedHash('missing', hash('missing')), undefined)
    assert.deepEqual(made, ['a', 'b', 'b'], 'a is hashed once; b again after its data changed')
    assert.deepEqual([...table.keyHashes((key) => BigInt(key.length))], [['a', 4n], ['b', 7n]], 'the kept hashes, in order, without making any')
    const fresh = PackedTable.pack(new Map<string, Entry>([['a', { data: 'x', author: 'r', bleachTTL: 9 }], ['bb', { data: 1, author: 'r', bleachTTL: 9 }]]))
    assert.deepEqual([...fresh.keyHashes((key) => BigInt(key.length), (key) => key !== 'a')], [['bb', 2n]])
    assert.equal(fresh.cachedHash('bb', () => 99n), 2n, 'a hash keyHashes made is kept')
  })

  it('holds at most a third more text than its entries use, however many folds replaced them', () => {
    const rand = fc.sample(fc.integer({ min: 0, max: 1999 }), { numRuns: 60 * 300, seed: 7 })
    let table = PackedTable.pack(new Map(Array.from({ length: 2000 }, (_, i) => [`k${i}`, { data: { i, pad: 'x'.repeat(150) }, author: 'r', bleachTTL: 30 } as Entry])), options)
    const first = table
    for (let round = 0; round < 60; round++) {
      const changes = new Map<string, Entry>()
      for (let j = 0; j < 300; j++) {
        const i = rand[round * 300 + j] as number
        changes.set(`k${i}`, { data: { i, round, pad: 'y'.repeat(150) }, author: 'r', bleachTTL: 30 })
      }
      table = PackedTable.fold(table, changes, new Set())
      const { live, held, compressed } = table.textSize()
      assert.ok(held <= live * (4 / 3) + 64 * 1024, `round ${round}: ${held} characters held for ${live} in use`)
      if (options.codec) assert.ok(compressed >= held * 0.8, `round ${round}: only ${compressed} of ${held} characters held compressed`)
    }
    assert.equal(table.textSize().compressed > 0, options.codec !== undefined)
    assert.deepEqual(first.get('k5'), { data: { i: 5, pad: 'x'.repeat(150) }, author: 'r', bleachTTL: 30 }, 'the first table still reads as it was')
  })

  it('appends new keys in the room its columns have, and two tables built on the same one each read as their own Map', () => {
    const e = (tag: string, i: number): Entry => ({ data: { tag, i, pad: 'z'.repeat(i % 50) }, author: `r${i % 3}`, bleachTTL: 10 + (i % 7), ...(i % 4 === 0 ? { clock: String(1000 + i) } : {}) })
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ unit: 'binary', maxLength: 5 }), { minLength: 8, maxLength: 80 }), fc.integer({ min: 1, max: 3 }), fc.boolean(), (all, few, hashFirst) => {
        // Disjoint key sets: the base's (half), a1's (a quarter: its copy has room for about a fifth more), and
        // `few` keys each for a2, b1 and b2, so that they fit in that room.
        const half = Math.floor(all.length / 2)
        const quarter = Math.floor(all.length / 4)
        const rest = all.slice(half + quarter)
        const sets = [all.slice(0, half), all.slice(half, half + quarter), rest.slice(0, few), rest.slice(few, 2 * few), rest.slice(2 * few, 3 * few)]
        const mapOf = (keys: string[], tag: string) => new Map(keys.map((k, i) => [k, e(tag, i)]))
        const baseMap = mapOf(sets[0] as string[], 'base')
        const base = PackedTable.pack(baseMap, options)
        // Like reconciliation's, a hash that a bleach keeps: of the data, not the TTL.
        const hash = (x: Entry) => BigInt(JSON.stringify(x.data).length)
        if (hashFirst) for (const k of baseMap.keys()) base.cachedHash(k, hash)
        const add = (from: PackedTable, fromMap: Map<string, Entry>, keys: string[], tag: string) => {
          const changes = mapOf(keys, tag)
          return { table: PackedTable.fold(from, changes, new Set(), options), map: new Map([...fromMap, ...changes]) }
        }
        const a1 = add(base, baseMap, sets[1] as string[], 'a1')
        const a2 = add(a1.table, a1.map, sets[2] as string[], 'a2')
        // Built on tables that others have already appended to: these must not write over them.
        const b1 = add(base, baseMap, sets[3] as string[], 'b1')
        const b2 = add(a1.table, a1.map, sets[4] as string[], 'b2')
        const bleachedA2 = a2.table.bleached().table
        const c = add(bleachedA2, new Map([...a2.map].map(([k, v]) => [k, { ...v, bleachTTL: v.bleachTTL - 1 }])), sets[3] as string[], 'c')
        for (const [t, m] of [[base, baseMap], [a1.table, a1.map], [a2.table, a2.map], [b1.table, b1.map], [b2.table, b2.map], [c.table, c.map]] as const) {
          assertSameTable(t, m as Map<string, Entry>)
          for (const [k, v] of m) assert.equal(t.cachedHash(k, hash), hash(v), 'a kept hash belongs to its own entry')
        }
        assert.equal(b1.table.sharesColumnsWith(a1.table), false, 'a second table built on the base has columns of its own')
        assert.equal(b2.table.sharesColumnsWith(a2.table), false)
      }),
      { numRuns: 150 },
    )
  })

  it('copies its columns once per quarter of growth when keys are only added, not at every fold', () => {
    const tables = [PackedTable.pack(new Map(Array.from({ length: 100 }, (_, i) => [`k${i}`, { data: i, author: 'r', bleachTTL: 9 } as Entry])), options)]
    for (let i = 100; i < 200; i++) tables.push(PackedTable.fold(tables.at(-1) as PackedTable, new Map([[`k${i}`, { data: i, author: 'r', bleachTTL: 9 }]]), new Set(), options))
    const copies = tables.filter((t, i) => i > 0 && !t.sharesColumnsWith(tables[i - 1] as PackedTable)).length
    // 100 → 101 (room for 127) → 128 (160) → 161 (202): three copies for a hundred folds.
    assert.equal(copies, 3)
    assertSameTable(tables[50] as PackedTable, new Map(Array.from({ length: 150 }, (_, i) => [`k${i}`, { data: i, author: 'r', bleachTTL: 9 } as Entry])))
    // A fold that replaces a key builds the table anew.
    const replaced = PackedTable.fold(tables[100] as PackedTable, new Map([['k3', { data: 'x', author: 'r', bleachTTL: 9 }]]), new Set(), options)
    assert.equal(replaced.sharesColumnsWith(tables[100] as PackedTable), false)
    assert.deepEqual(replaced.get('k3'), { data: 'x', author: 'r', bleachTTL: 9 })
  })

  it('writes single inserts into the chunk being filled, not one chunk each', () => {
    let table = PackedTable.pack(new Map([['k0', { data: 0, author: 'r', bleachTTL: 9 } as Entry]]), options)
    for (let i = 1; i < 400; i++) table = PackedTable.fold(table, new Map([[`k${i}`, { data: { i, pad: 'p'.repeat(40) }, author: 'r', bleachTTL: 9 }]]), new Set())
    const { live, held, chunks } = table.textSize()
    const chunkChars = options.chunkChars ?? 8 * 1024
    assert.ok(held <= live * (4 / 3) + chunkChars, `${held} characters held for ${live} in use`)
    // Each chunk but the last is at least half full of data (keys are counted in `live` too).
    assert.ok(chunks <= live / (chunkChars / 2) + 1, `${chunks} chunks for ${live} characters`)
    assert.deepEqual(table.get('k399'), { data: { i: 399, pad: 'p'.repeat(40) }, author: 'r', bleachTTL: 9 })
  })
})

describe('a replica that packs its large tables', () => {
  const TYPE = 'hosts' as TypeName
  const NOW = 1_700_000_000_000

  it('holds, saves, merges, bleaches and reloads exactly what a replica of plain Maps does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('insert' as const), values: fc.array(fc.tuple(fc.string({ maxLength: 3 }), json), { maxLength: 12 }) }),
            fc.record({ kind: fc.constant('remove' as const), keys: fc.array(fc.string({ maxLength: 3 }), { maxLength: 4 }) }),
            fc.record({ kind: fc.constant('merge' as const), entries: fc.array(fc.tuple(fc.string({ maxLength: 3 }), entry), { maxLength: 8 }) }),
            fc.record({ kind: fc.constant('bleach' as const) }),
          ),
          { maxLength: 20 },
        ),
        async (ops) => {
          const stores = [new MemoryStore(), new MemoryStore()]
          // `at: 4` packs tables from four entries on, so every operation meets packed tables, and their unpacking.
          const replicas = [
            new Replica({ store: stores[0] as MemoryStore, author: 'me', now: () => NOW }),
            new Replica({ store: stores[1] as MemoryStore, author: 'me', now: () => NOW, packing: { at: 4, Table: PackedTable, options: { codec: DEFLATE_TEXT, chunkChars: 64 } } }),
          ]
          for (const o of ops) {
            for (const r of replicas) {
              if (o.kind === 'insert') await r.insert(TYPE, o.values)
              else if (o.kind === 'remove') await r.remove(TYPE, o.keys)
              else if (o.kind === 'merge') await r.merge(TYPE, new Map(o.entries.filter(([, e]) => e.clock === undefined || /^(0|[1-9][0-9]*)$/.test(e.clock))))
              else await r.bleach(TYPE)
            }
            const [plain, packed] = await Promise.all(replicas.map((r) => r.get(TYPE)))
            assert.deepEqual([...(packed?.table ?? [])], [...(plain?.table ?? [])])
            assert.deepEqual(JSON.parse(packed?.text ?? ''), JSON.parse(plain?.text ?? ''))
          }
          // Read again from the store by a new replica: packed from the text, as a daemon starting does.
          const reloaded = await new Replica({ store: stores[1] as MemoryStore, author: 'me', packing: { at: 4, Table: PackedTable, options: { codec: DEFLATE_TEXT, chunkChars: 64 } } }).get(TYPE)
          const plain = await new Replica({ store: stores[0] as MemoryStore, author: 'me' }).get(TYPE)
          assert.deepEqual([...reloaded.table], [...plain.table])
        },
      ),
      { numRuns: 60 },
    )
  })
})
