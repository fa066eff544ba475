import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { serializeTable, serializeTableChunks } from '../../src/core/schema.js'
import { DraftTable } from '../../src/replica/draft-table.js'

/**
 * A whole-table save writes `serializeTableChunks` to disk while the wire answers with `serializeTable`: the two
 * must be the same characters, or a file would differ from what the same table sends (and from LibreMesh's).
 */
const entry = (data: unknown, extra: Record<string, unknown> = {}) => ({ data, author: 'node-a', bleachTTL: 30, clock: '1700000000000001', ...extra })

function joined(table: ReadonlyMap<string, object>, chunkChars?: number): { text: string; pieces: string[] } {
  const pieces = [...serializeTableChunks(table, chunkChars)]
  return { text: pieces.join(''), pieces }
}

describe('serializeTableChunks', () => {
  it('gives {} for an empty table, as serializeTable does', () => {
    const table = new Map<string, object>()
    assert.equal(joined(table).text, serializeTable(table))
    assert.equal(joined(table).text, '{}')
  })

  it('puts integer-like keys first in numeric order, exactly where an object puts them', () => {
    // Array indices (canonical integers below 2^32 - 1) move to the front; everything else keeps insertion order.
    const keys = ['b', '10', 'a', '2', '01', '-1', '0', '4294967295', '4294967294', '1.5', '1e3', ' 7', '7 ', '3', '', '00']
    const table = new Map(keys.map((k, i) => [k, entry(i)]))
    const { text } = joined(table)
    assert.equal(text, serializeTable(table))
    assert.deepEqual(Object.keys(JSON.parse(text) as object).slice(0, 6), ['0', '2', '3', '10', '4294967294', 'b'])
  })

  it('escapes unicode keys and data as JSON.stringify does', () => {
    const table = new Map<string, object>([
      ['ñandú 🐦', entry({ name: 'Ñuñoa — 東京', emoji: '🛰️', quote: '"\\\n\t\u0000\u2028' })],
      ['\ud800lone', entry('\udc00 lone low')],
      ['κλειδί', entry(['α', { 'β': null }], { note: 'extra field ✓' })],
    ])
    assert.equal(joined(table, 8).text, serializeTable(table))
  })

  it('matches a large table in many pieces, each but the last at least the asked size', () => {
    const table = new Map<string, object>()
    for (let i = 0; i < 20_000; i++) table.set(i % 7 === 0 ? String(i) : `host-${i}`, entry({ hostname: `lm-${i}`, uptime: i * 37, ok: i % 2 === 0 }))
    const expected = serializeTable(table)
    for (const size of [1, 1000, 64 * 1024]) {
      const { text, pieces } = joined(table, size)
      assert.equal(text, expected, `chunks of ${size}`)
      assert.ok(pieces.length > 1)
      for (const piece of pieces.slice(0, -1)) assert.ok(piece.length >= size)
    }
  })

  it('follows a draft\'s order (deleted and re-added keys last), as serializeTable does', () => {
    const base = new Map<string, object>([['a', entry(1)], ['5', entry(2)], ['b', entry(3)], ['c', entry(4)]])
    const draft = DraftTable.over(base)
    draft.delete('a')
    draft.set('z', entry(5))
    draft.set('a', entry(6))
    draft.set('1', entry(7))
    assert.equal(joined(draft, 4).text, serializeTable(draft))
  })
})
