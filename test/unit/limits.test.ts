import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { jsonLimitProblem, MAX_ENTRY_CHARS, MAX_ENTRY_DEPTH, nestsDeeperThan } from '../../src/core/json-limits.js'
import { parseInsertValues, parseJsonText, parseTable } from '../../src/core/schema.js'
import type { TypeName } from '../../src/core/types.js'
import { ChangeLog } from '../../src/replica/change-log.js'
import { Replica } from '../../src/replica/replica.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { baseAddress } from '../../src/transport/address.js'
import { isLocal, isLoopback, REQUEST_COST_BYTES, SourceLimits, type SourceLimitOptions } from '../../src/node/daemon/source-limits.js'
import { LogThrottle } from '../../src/node/log.js'

const nested = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`)

describe('limits on entries', () => {
  it('takes entries up to 31 levels deep, the entry included, and refuses one level more', () => {
    assert.equal(jsonLimitProblem({ data: nested(30) }, MAX_ENTRY_DEPTH, MAX_ENTRY_CHARS), undefined)
    assert.match(jsonLimitProblem({ data: nested(31) }, MAX_ENTRY_DEPTH, MAX_ENTRY_CHARS) ?? '', /nested deeper than 31/)
    // Iterative: 100,000 levels are measured without overflowing the stack.
    assert.match(jsonLimitProblem(nested(100_000), MAX_ENTRY_DEPTH, MAX_ENTRY_CHARS) ?? '', /nested deeper/)
  })

  it('refuses non-finite numbers and what JSON cannot carry', () => {
    assert.match(jsonLimitProblem({ n: [1, JSON.parse('1e309')] }, 31, 1000) ?? '', /finite/)
    assert.match(jsonLimitProblem({ n: Number.NaN }, 31, 1000) ?? '', /finite/)
    assert.match(jsonLimitProblem({ n: 1n }, 31, 1000) ?? '', /bigint is not a JSON value/)
    assert.equal(jsonLimitProblem({ n: -1.5e308, s: 'x', t: true, z: null }, 31, 1000), undefined)
  })

  it('counts size as characters of JSON, escapes included', () => {
    assert.equal(jsonLimitProblem('a'.repeat(998), 31, 1000), undefined)
    assert.match(jsonLimitProblem('a'.repeat(999), 31, 1000) ?? '', /larger than 1000/)
    assert.match(jsonLimitProblem('\n'.repeat(600), 31, 1000) ?? '', /larger than/, 'each newline is two characters once escaped')
  })

  it('refuses text nested too deep before parsing it, brackets inside strings not counted', () => {
    assert.ok(nestsDeeperThan('[[[]]]', 2))
    assert.ok(!nestsDeeperThan('[[[]]]', 3))
    assert.ok(!nestsDeeperThan('{"a":"[[[[[[","b":"\\\\","c":"\\"[[[["}', 1), 'escaped quotes and backslashes end strings where JSON says')
    assert.ok(nestsDeeperThan('{"a":"\\\\",' + '"b":[[[1]]]}', 3))
    assert.ok(!nestsDeeperThan('"unterminated [[[[', 1))
    assert.throws(() => parseJsonText(`${'['.repeat(6000)}${']'.repeat(6000)}`, 'body'), (e: unknown) => isMallaError(e, 'BAD_INPUT') && /nested deeper than 40/.test((e as Error).message))
    assert.deepEqual(parseJsonText(`${'['.repeat(40)}${']'.repeat(40)}`, 'body'), JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`))
  })

  it('are checked by every parse at the edge, with BAD_INPUT that names the key', () => {
    const entry = (data: unknown) => ({ data, author: 'A', bleachTTL: 30 })
    for (const table of [{ k: entry(nested(31)) }, { k: entry(JSON.parse('1e309')) }, { k: entry('x'.repeat(MAX_ENTRY_CHARS)) }]) {
      assert.throws(() => parseTable(table), (e: unknown) => isMallaError(e, 'BAD_INPUT') && /entry "k"/.test((e as Error).message))
    }
    assert.throws(() => parseInsertValues({ k: nested(31) }), (e: unknown) => isMallaError(e, 'BAD_INPUT'))
    assert.throws(() => parseInsertValues({ k: 'x'.repeat(61 * 1024) }), (e: unknown) => isMallaError(e, 'BAD_INPUT'))
    assert.deepEqual(parseInsertValues({ k: nested(30) }).length, 1)
  })
})

describe('ChangeLog bounds', () => {
  const setup = (maxChars: number, maxChanges = 10_000) => {
    const replica = new Replica({ store: new MemoryStore(), author: 'A' })
    return { replica, log: new ChangeLog(replica, { epoch: 'e', maxChars, maxChanges }) }
  }
  const T = 't' as TypeName

  it('keeps changes up to a number of characters, and resets a client that fell behind', async () => {
    const { replica, log } = setup(10_000)
    for (let i = 0; i < 20; i++) await replica.insert(T, [['k', `${i}`.padEnd(2000, 'x')]])
    assert.ok(log.size().chars <= 10_000, `${log.size().chars} characters kept`)
    assert.ok(log.size().changes >= 4)
    assert.equal(log.since('e.1').kind, 'reset')
    const recent = log.since('e.19')
    assert.ok(recent.kind === 'replay' && recent.changes.length === 1 && recent.changes[0]?.cursor === 'e.20')
    log.close()
  })

  it('always keeps the latest change, however large, so its reader can resume after it', async () => {
    const { replica, log } = setup(100)
    await replica.insert(T, [['k', 'x'.repeat(5000)]])
    assert.deepEqual(log.size().changes, 1)
    assert.deepEqual(log.since('e.1'), { kind: 'replay', changes: [] })
    log.close()
  })

  it('keeps at most a number of changes', async () => {
    const { replica, log } = setup(1_000_000, 5)
    for (let i = 0; i < 12; i++) await replica.insert(T, [['k', i]])
    assert.equal(log.size().changes, 5)
    assert.equal(log.since('e.6').kind, 'reset')
    assert.equal(log.since('e.7').kind, 'replay')
    log.close()
  })
})

describe('SourceLimits', () => {
  const options: SourceLimitOptions = {
    bytesPerSecond: 1000,
    burstBytes: 10_000,
    neighbourBytesPerSecond: 100_000,
    neighbourBurstBytes: 1_000_000,
    maxInFlight: 2,
    neighbourMaxInFlight: 4,
    maxInFlightBytes: 15_000,
  }
  const clock = () => {
    let t = 0
    return { now: () => t, advance: (ms: number) => (t += ms) }
  }

  it('charges each address its bytes and refuses it, not others, once its burst is spent; the rate refills it', () => {
    const c = clock()
    const limits = new SourceLimits(options, () => false, c.now)
    const a = limits.admit('10.0.0.1', false)
    a.charge(10_000 - REQUEST_COST_BYTES)
    a.end()
    assert.throws(() => limits.admit('10.0.0.1', false), (e: unknown) => isMallaError(e, 'BUSY'))
    limits.admit('10.0.0.2', false).end()
    c.advance(1000)
    const again = limits.admit('10.0.0.1', false)
    assert.throws(() => again.charge(1000), (e: unknown) => isMallaError(e, 'BUSY'), 'one second refilled 1000 bytes, the request cost 512 of them')
    again.charge(400)
    again.end()
  })

  it('bounds requests in progress per address and body bytes in progress in all', () => {
    const limits = new SourceLimits(options, () => false, () => 0)
    const [x, y] = [limits.admit('10.0.0.1', false), limits.admit('10.0.0.1', false)]
    assert.throws(() => limits.admit('10.0.0.1', false), /2 requests in progress/)
    x.end()
    x.end() // ending twice frees once
    const z = limits.admit('10.0.0.1', false)
    assert.throws(() => limits.admit('10.0.0.1', false))
    y.end()
    z.end()
    const held = ['10.0.0.3', '10.0.0.4'].map((a) => limits.admit(a, false))
    held[0]?.charge(8000)
    assert.throws(() => held[1]?.charge(8000), /bytes of requests in progress/)
    held[0]?.end()
    held[1]?.charge(8000)
    assert.deepEqual(limits.stats(), { requests: 1, bytes: 8000 })
  })

  it('takes the bytes of answers even past zero, so the next requests wait for the budget to refill', () => {
    const c = clock()
    const limits = new SourceLimits(options, () => false, c.now)
    const t = limits.admit('10.0.0.1', false)
    t.debit(50_000)
    t.end()
    assert.throws(() => limits.admit('10.0.0.1', false), (e: unknown) => isMallaError(e, 'BUSY'))
    c.advance(40_000)
    assert.throws(() => limits.admit('10.0.0.1', false), 'still below zero after 40 s at 1000 B/s')
    c.advance(5_000)
    limits.admit('10.0.0.1', false).end()
  })

  it('gives neighbours their own, larger budget, and does not limit this machine', () => {
    const limits = new SourceLimits(options, (a) => a === 'fe80::1' || a === '10.0.0.9', () => 0)
    // A socket gives a link-local neighbour's address with its zone, an IPv4 one mapped: the same neighbour.
    for (const from of ['fe80::1%eth0', '::ffff:10.0.0.9']) {
      const n = limits.admit(from, false)
      n.charge(500_000)
      n.end()
    }
    for (let i = 0; i < 100; i++) limits.admit('127.0.0.1', true).charge(1_000_000)
  })
})

describe('addresses', () => {
  it('tells this machine from others, mapped and zoned forms included', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopback(a), a)
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', 'fe80::1%eth0', '128.0.0.1']) assert.ok(!isLoopback(a), a)
    assert.ok(isLocal({ remoteAddress: '::ffff:10.9.0.2', localAddress: '10.9.0.2' }), 'from our own address')
    assert.ok(!isLocal({ remoteAddress: '10.9.0.3', localAddress: '10.9.0.2' }))
    assert.ok(!isLocal({}))
    assert.equal(baseAddress('http://[fe80::1%25br-lan]:8080'), 'fe80::1')
    assert.equal(baseAddress('http://10.13.0.1'), '10.13.0.1')
    assert.equal(baseAddress('not a url'), undefined)
  })
})

describe('LogThrottle', () => {
  it('lets a few lines a window through per key and says how many it held back', () => {
    let t = 0
    const throttle = new LogThrottle(2, 1000, () => t)
    assert.deepEqual([throttle.allow('a'), throttle.allow('a'), throttle.allow('a'), throttle.allow('a'), throttle.allow('b')], [
      { ok: true, held: 0 },
      { ok: true, held: 0 },
      { ok: false },
      { ok: false },
      { ok: true, held: 0 },
    ])
    t = 1000
    assert.deepEqual(throttle.allow('a'), { ok: true, held: 2 })
    assert.deepEqual(throttle.allow('a'), { ok: true, held: 0 })
  })
})
