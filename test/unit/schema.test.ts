import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MAX_CLOCK } from '../../src/core/clock.js'
import { isMallaError } from '../../src/core/errors.js'
import {
  isTypeName,
  MAX_KEY_LENGTH,
  MAX_TYPE_NAME_LENGTH,
  parseJsonText,
  parseMultiWriterTable,
  parseTable,
  parseTypeName,
  serializeTable,
} from '../../src/core/schema.js'
import type { Entry } from '../../src/core/types.js'
import { DEMO_TABLE, EMPTY_TABLE_ANSWER, SYNC_ANSWER, SYNC_FROM_W2, WRONG_SHAPE } from './lua-wire-fixtures.js'

/** Asserts a BAD_INPUT MallaError whose message contains every given fragment. */
function assertBadInput(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isMallaError(e, 'BAD_INPUT'), `expected MallaError BAD_INPUT, got ${String(e)}`)
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`)
    return true
  })
}

const entryOf = (raw: Record<string, unknown>): Record<string, unknown> => ({ 'my-key': raw })

describe('parseTable accepts what LibreMesh routers send', () => {
  it('reads json-c\'s empty table `[]` and `{}` as an empty table', () => {
    assert.deepEqual(parseTable([]), new Map())
    assert.deepEqual(parseTable({}), new Map())
  })

  it('restores data: null for a removed entry sent without a data field', () => {
    const t = parseTable({ gone: { author: 'W1', bleachTTL: 30 } })
    assert.deepEqual(t.get('gone'), { author: 'W1', bleachTTL: 30, data: null })
    assert.equal(Object.hasOwn(t.get('gone') as object, 'data'), true)
  })

  it('keeps an explicit null, falsy data and any JSON data as sent', () => {
    const t = parseTable({
      n: { data: null, author: 'A', bleachTTL: 1 },
      zero: { data: 0, author: 'A', bleachTTL: 1 },
      f: { data: false, author: 'A', bleachTTL: 1 },
      s: { data: '', author: 'A', bleachTTL: 1 },
      deep: { data: { a: [1, { b: null }], c: 'x' }, author: 'A', bleachTTL: 1 },
    })
    assert.equal(t.get('n')?.data, null)
    assert.equal(t.get('zero')?.data, 0)
    assert.equal(t.get('f')?.data, false)
    assert.equal(t.get('s')?.data, '')
    assert.deepEqual(t.get('deep')?.data, { a: [1, { b: null }], c: 'x' })
  })

  it('keeps extra entry fields as received', () => {
    const t = parseTable({ k: { data: 1, author: 'W2', bleachTTL: 31, v: 7, meta: { tags: ['a'] } } })
    assert.deepEqual(t.get('k'), { data: 1, author: 'W2', bleachTTL: 31, v: 7, meta: { tags: ['a'] } })
  })

  it('accepts a TTL of 0 or below (merge ignores such entries, parsing keeps them)', () => {
    const t = parseTable({ a: { data: 1, author: 'W2', bleachTTL: 0 }, b: { data: 1, author: 'W2', bleachTTL: -3 } })
    assert.equal(t.get('a')?.bleachTTL, 0)
    assert.equal(t.get('b')?.bleachTTL, -3)
  })

  it('accepts decimal clock strings without leading zeros', () => {
    for (const clock of ['0', '7', '1700000000000', String(MAX_CLOCK - 1)]) {
      assert.equal(parseTable(entryOf({ data: 1, author: 'A', bleachTTL: 3, clock })).get('my-key')?.clock, clock)
    }
  })
})

describe('parseTable rejects wrong shapes with BAD_INPUT', () => {
  it('rejects a table that is not an object of entries', () => {
    for (const value of [5, 'text', null, true, undefined, [1], [{ data: 1, author: 'A', bleachTTL: 1 }]]) {
      assertBadInput(() => parseTable(value), 'table')
    }
  })

  it('names the context it is given', () => {
    assertBadInput(() => parseTable(5, 'body from 10.0.0.1'), 'body from 10.0.0.1')
  })

  it('rejects an entry that is not an object, naming its key', () => {
    for (const value of [5, 'x', null, [], true]) assertBadInput(() => parseTable({ 'my-key': value }), '"my-key"')
  })

  it('rejects a missing or non-string author, naming the key', () => {
    assertBadInput(() => parseTable(entryOf({ data: 1, bleachTTL: 3 })), '"my-key"')
    assertBadInput(() => parseTable(entryOf({ data: 1, author: 5, bleachTTL: 3 })), '"my-key"')
    assertBadInput(() => parseTable(entryOf({ data: 1, author: null, bleachTTL: 3 })), '"my-key"')
  })

  it('rejects a missing, non-integer or out-of-range bleachTTL, naming the key', () => {
    for (const bleachTTL of [1.5, '3', null, Number.NaN, Infinity, 2 ** 31, -(2 ** 31) - 1]) {
      assertBadInput(() => parseTable(entryOf({ data: 1, author: 'A', bleachTTL })), '"my-key"')
    }
    assertBadInput(() => parseTable(entryOf({ data: 1, author: 'A' })), '"my-key"')
  })

  it('rejects a clock that is not a canonical decimal string, naming the key', () => {
    for (const clock of ['01', 'abc', '', '-1', '1e3', ' 1', '1.0', '0x10', '12345678901234567', 5, null]) {
      assertBadInput(() => parseTable(entryOf({ data: 1, author: 'A', bleachTTL: 3, clock })), '"my-key"')
    }
  })

  // A clock at or above MAX_CLOCK would outrank every write a node can ever make to that key, freezing it.
  it('rejects a clock above MAX_CLOCK, which no WriteClock could ever overtake', () => {
    for (const clock of [String(MAX_CLOCK + 1), '9999999999999999']) {
      assertBadInput(() => parseTable(entryOf({ data: 1, author: 'A', bleachTTL: 3, clock })), '"my-key"')
    }
  })

  it('rejects a key longer than MAX_KEY_LENGTH and accepts one of exactly that length', () => {
    const entry = { data: 1, author: 'A', bleachTTL: 3 }
    assert.equal(parseTable({ ['k'.repeat(MAX_KEY_LENGTH)]: entry }).size, 1)
    assertBadInput(() => parseTable({ ['k'.repeat(MAX_KEY_LENGTH + 1)]: entry }), 'key')
  })

  it('turns unparsable JSON text into BAD_INPUT', () => {
    assertBadInput(() => parseJsonText('{bad', 'request body'), 'request body')
  })
})

describe('parseMultiWriterTable', () => {
  it('accepts multi-writer entries and json-c\'s `[]`', () => {
    assert.deepEqual(parseMultiWriterTable([]), new Map())
    const t = parseMultiWriterTable({ k: { author: 'A', changes: 2, fortune: 777, lastModified: 1700000000 } })
    assert.deepEqual(t.get('k'), { data: null, author: 'A', changes: 2, fortune: 777, lastModified: 1700000000 })
  })

  it('rejects a negative or fractional change counter and a non-number fortune, naming the key', () => {
    assertBadInput(() => parseMultiWriterTable(entryOf({ data: 1, author: 'A', changes: -1, fortune: 1 })), '"my-key"')
    assertBadInput(() => parseMultiWriterTable(entryOf({ data: 1, author: 'A', changes: 0.5, fortune: 1 })), '"my-key"')
    assertBadInput(() => parseMultiWriterTable(entryOf({ data: 1, author: 'A', changes: 0, fortune: '1' })), '"my-key"')
    assertBadInput(() => parseMultiWriterTable(entryOf({ data: 1, author: 'A', bleachTTL: 3 })), '"my-key"')
  })
})

describe('parseTypeName', () => {
  it('accepts names of [A-Za-z0-9_-]+ up to the length limit', () => {
    for (const name of ['bat-hosts', 'dnsmasq-hosts', 'pirania_vouchers', 'nodes_and_links', 'A9', '-', 'x'.repeat(MAX_TYPE_NAME_LENGTH)]) {
      assert.equal(parseTypeName(name), name)
      assert.equal(isTypeName(name), true)
    }
  })

  it('rejects empty, dotted, slashed, traversing, spaced, non-ASCII, too long and non-string names', () => {
    for (const name of ['', 'a.b', 'a/b', '../x', '..', 'a b', 'año', 'abc\n', 'x'.repeat(MAX_TYPE_NAME_LENGTH + 1), 5, undefined, null]) {
      assertBadInput(() => parseTypeName(name))
      assert.equal(isTypeName(name), false, JSON.stringify(name))
    }
  })
})

describe('`__proto__` is a key like any other', () => {
  it('keeps `__proto__` as a table key through parse and serialize without touching prototypes', () => {
    const text = '{"__proto__":{"data":{"polluted":true},"author":"evil","bleachTTL":3},"ok":{"data":1,"author":"A","bleachTTL":3}}'
    const t = parseTable(JSON.parse(text))
    assert.deepEqual([...t.keys()].sort(), ['__proto__', 'ok'])
    assert.deepEqual(t.get('__proto__'), { data: { polluted: true }, author: 'evil', bleachTTL: 3 })
    const out = serializeTable(t)
    const reparsed = JSON.parse(out) as Record<string, unknown>
    assert.equal(Object.hasOwn(reparsed, '__proto__'), true)
    assert.deepEqual(parseTable(reparsed), t)
    const probe = {} as Record<string, unknown>
    assert.equal(probe['author'], undefined)
    assert.equal(probe['polluted'], undefined)
    assert.equal(Object.getPrototypeOf(probe), Object.prototype)
  })

  it('keeps `__proto__` inside data as plain data', () => {
    const t = parseTable(JSON.parse('{"k":{"data":{"__proto__":{"polluted":true}},"author":"A","bleachTTL":3}}'))
    const data = t.get('k')?.data as Record<string, unknown>
    assert.equal(Object.hasOwn(data, '__proto__'), true)
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
    assert.equal(serializeTable(t), '{"k":{"data":{"__proto__":{"polluted":true}},"author":"A","bleachTTL":3}}')
  })
})

describe('recorded Lua router bodies', () => {
  it('parses a table after insert and remove: `\\/` escapes, `[]` for {}, a removed entry without data', () => {
    const t = parseTable(JSON.parse(DEMO_TABLE))
    assert.deepEqual(
      t,
      new Map<string, Entry>([
        ['hello', { data: 'world', author: 'W1', bleachTTL: 30 }],
        ['path', { data: 'a/b', author: 'W1', bleachTTL: 30 }],
        ['obj', { data: [], author: 'W1', bleachTTL: 30 }],
        ['list', { data: null, author: 'W1', bleachTTL: 30 }],
      ]),
    )
  })

  it('parses the empty-table answer `[]` followed by a newline', () => {
    assert.deepEqual(parseTable(parseJsonText(EMPTY_TABLE_ANSWER, 'answer')), new Map())
  })

  it('parses a sync body with an extra field and a TTL of 0', () => {
    const t = parseTable(JSON.parse(SYNC_FROM_W2))
    assert.deepEqual(t.get('hello'), { data: 'newer', author: 'W2', bleachTTL: 31, v: 7 })
    assert.deepEqual(t.get('dead'), { data: 1, author: 'W2', bleachTTL: 0 })
    assert.equal(t.size, 3)
  })

  it('parses the merged answer and writes it back as the same table', () => {
    const t = parseTable(JSON.parse(SYNC_ANSWER))
    assert.deepEqual(t.get('hello'), { data: 'newer', author: 'W2', bleachTTL: 31, v: 7 })
    assert.deepEqual(parseTable(JSON.parse(serializeTable(t))), t)
  })

  it('rejects the body of the wrong shape that the Lua code fails on, naming the key', () => {
    assertBadInput(() => parseTable(JSON.parse(WRONG_SHAPE)), '"x"')
  })
})
