import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import type { Entry, Table } from '../../src/core/types.js'
import { mergeTable } from '../../src/core/table-ops.js'
import { answerSummary, bucketCount, keyBucket, parseReconcileRequest, pick, planExchange, tableDigests } from '../../src/sync/reconcile.js'

const entry = (data: unknown, clock: number, ttl = 30, author = 'A'): Entry => ({ data: data as Entry['data'], author, bleachTTL: ttl, clock: String(clock) })

function table(n: number, ttl = 30): Table {
  return new Map(Array.from({ length: n }, (_, i) => [`host-${i}`, entry({ ip: `10.0.0.${i % 250}`, i }, 1000 + i, ttl)]))
}

/** One full reconciliation between two in-memory tables, as the daemons do it over HTTP. */
function reconcile(asker: Table, answerer: Table): { gave: number; wanted: number; bytes: number } {
  const buckets = bucketCount(asker.size)
  const r1 = { v: 1 as const, flavour: 'ttl' as const, type: 't', buckets, digests: tableDigests('ttl', asker, buckets) }
  const parsed = parseReconcileRequest(JSON.parse(JSON.stringify(r1)))
  assert.equal(parsed.round, 1)
  const answer = JSON.parse(JSON.stringify(answerSummary(parsed.request as typeof r1, answerer)))
  const { give, want } = planExchange('ttl', asker, buckets, answer)
  mergeTable(answerer, give as Table)
  const back = pick(answerer, want).entries
  mergeTable(asker, back as Table)
  return { gave: give.size, wanted: want.length, bytes: JSON.stringify(r1).length + JSON.stringify(answer).length + JSON.stringify([...give]).length + JSON.stringify([...back]).length }
}

describe('reconciliation by bucket digests', () => {
  it('finds nothing to send between tables that hold the same writes, whatever their TTLs and key order', () => {
    const a = table(1000)
    const b = new Map([...table(1000, 17)].reverse())
    assert.equal(tableDigests('ttl', a, 128), tableDigests('ttl', b, 128))
    const r = reconcile(a, b)
    assert.deepEqual([r.gave, r.wanted], [0, 0])
  })

  it('exchanges exactly the keys that differ, both ways, and leaves both tables equal', () => {
    const a = table(5000)
    const b = table(5000)
    a.set('only-a', entry('a', 9000))
    b.set('only-b', entry('b', 9001))
    a.set('host-7', entry('newer on a', 9002))
    b.set('host-9', entry('newer on b', 9003))
    const r = reconcile(a, b)
    // A key held differently on both sides is both given and wanted: the merge order settles it on each side.
    assert.deepEqual([r.gave, r.wanted], [3, 3])
    assert.ok(r.bytes < 20_000, `${r.bytes} bytes for 4 differing keys in 5,000`)
    assert.equal(tableDigests('ttl', a, 1024), tableDigests('ttl', b, 1024))
    for (const k of ['only-a', 'only-b']) assert.ok(a.has(k) && b.has(k))
    assert.equal(b.get('host-7')?.data, 'newer on a')
    assert.equal(a.get('host-9')?.data, 'newer on b')
  })

  it('sizes buckets to the table: powers of two from 16 to 4096, about 8 entries each', () => {
    assert.equal(bucketCount(0), 16)
    assert.equal(bucketCount(10_000), 2048)
    assert.equal(bucketCount(10_000_000), 4096)
    for (const key of ['a', 'ü', 'host-1']) assert.ok(keyBucket(key, 64) >= 0 && keyBucket(key, 64) < 64)
    assert.equal(keyBucket('a', 1 << 30), 0xe40c292c % (1 << 30), 'FNV-1a 32 of "a"')
  })

  it('answers in pages: a summary lists whole buckets up to its page and says it is partial; wanted entries say there are more', () => {
    const a = table(2000)
    const empty: Table = new Map()
    const request = { v: 1 as const, flavour: 'ttl' as const, type: 't', buckets: 256, digests: tableDigests('ttl', empty, 256) }
    const whole = answerSummary(request, a)
    assert.equal(whole.partial, undefined)
    assert.equal(Object.values(whole.buckets).flat().length, 2000)
    const paged = answerSummary(request, a, 4000)
    assert.equal(paged.partial, true)
    const listed = Object.values(paged.buckets).flat()
    assert.ok(listed.length > 0 && listed.length < 2000, `${listed.length} items`)
    // Buckets are never cut: each listed bucket holds every key of it.
    for (const [b, items] of Object.entries(paged.buckets)) assert.equal(items.length, [...a.keys()].filter((k) => keyBucket(k, 256) === Number(b)).length)
    // At least one bucket, even past the page.
    assert.equal(Object.keys(answerSummary(request, a, 1).buckets).length, 1)

    const want = [...a.keys()]
    const first = pick(a, want, 10_000)
    assert.equal(first.more, true)
    assert.ok(first.entries.size > 10 && first.entries.size < 2000)
    assert.deepEqual([...first.entries.keys()], want.slice(0, first.entries.size), 'in the order asked')
    assert.equal(pick(a, want, 1).entries.size, 1, 'at least one entry, however large')
    assert.deepEqual(pick(a, ['host-1', 'absent']), { entries: new Map([['host-1', a.get('host-1')]]), more: false })
  })

  it('rejects malformed requests with BAD_INPUT', () => {
    const bad: unknown[] = [
      null,
      { v: 1, flavour: 'ttl', type: 't', buckets: 24, digests: '0'.repeat(24 * 16) },
      { v: 1, flavour: 'ttl', type: 't', buckets: 16, digests: '0'.repeat(15) },
      { v: 1, flavour: 'ttl', type: 't', buckets: 16, digests: 'Z'.repeat(256) },
      { v: 2, flavour: 'ttl', type: 't', buckets: 16, digests: '0'.repeat(256) },
      { v: 1, flavour: 'ttl', type: '../x', buckets: 16, digests: '0'.repeat(256) },
      { v: 1, flavour: 'ttl', type: 't', buckets: 16, digests: '0'.repeat(256), extra: 1 },
      { v: 1, flavour: 'other', type: 't', entries: {}, want: [] },
      { v: 1, flavour: 'ttl', type: 't', entries: [], want: [] },
      { v: 1, flavour: 'ttl', type: 't', entries: {}, want: Array.from({ length: 20_001 }, (_, i) => `k${i}`) },
    ]
    for (const value of bad) assert.throws(() => parseReconcileRequest(value), (e) => isMallaError(e, 'BAD_INPUT'), JSON.stringify(value)?.slice(0, 80))
    assert.throws(() => planExchange('ttl', new Map(), 16, { buckets: { 3: [['k', 'nothex']] } }), (e) => isMallaError(e, 'BAD_INPUT'))
  })
})
