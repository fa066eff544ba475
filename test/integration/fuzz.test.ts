import assert from 'node:assert/strict'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { once } from 'node:events'
import { readdir, readFile, stat } from 'node:fs/promises'
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { gunzipSync, gzipSync } from 'node:zlib'
import { WebSocket } from 'ws'
import { parseMultiWriterTable, parseTable } from '../../src/core/schema.js'
import { freePort, startDaemon, tempDir, type RunningDaemon } from '../helpers/processes.js'
import { seededRandom } from '../../src/node/lab/topology.js'
import { MAX_TEXT_DEPTH, nestsDeeperThan } from '../../src/core/json-limits.js'
import { toBase64Url } from '../../src/core/base64url.js'
import { createIdentity, type Identity } from '../../src/identity/identity.js'
import { KEYS_TABLE } from '../../src/overlay/key-directory.js'
import { isWaiting, MAIL_PER_SENDER, MAIL_TABLE, MAX_MAIL_TTL } from '../../src/overlay/private-messages.js'
import { roomOwnType } from '../../src/overlay/room-tables.js'
import { roomAdmission } from '../../src/signaling/room-admission.js'
import { keySigner, recordSigner, type RecordSigner } from '../../src/signaling/signed-records.js'

/*
 * A seeded fuzz of one real daemon: a few thousand generated requests on every HTTP endpoint, push-socket
 * frames and STUN datagrams, a handful in flight at a time. The daemon must stay up, never answer 5xx, answer
 * every error as `{"error":{"code","message"}}`, store nothing it cannot read back, and not grow without bound.
 *
 * Replay a failure with the seed it prints: MALLA_FUZZ_SEED=<n> node --import tsx --test test/integration/fuzz.test.ts
 * (for a soak, MALLA_FUZZ_OPS and MALLA_FUZZ_MS raise the number of operations and the time allowed). Each
 * operation draws from its own generator, derived from the seed and its index, so operation #i is the same
 * request in every run of a seed whatever the timing (only ports and feed cursors differ, and the keys that sign
 * the records of a room's signed tables: made anew each run, they change the bytes, not which record is forged how).
 */

const SEED = process.env.MALLA_FUZZ_SEED !== undefined ? Number(process.env.MALLA_FUZZ_SEED) >>> 0 : 0x6d616c6c
const OPS = Number(process.env.MALLA_FUZZ_OPS ?? 3000)
/** Operations in flight at once: enough to overlap writes, few enough not to be a load test. */
const CONCURRENCY = 8
/** The fuzzing phase stops here whatever is left, so the whole test stays well under a minute. */
const FUZZ_BUDGET_MS = Number(process.env.MALLA_FUZZ_MS ?? 30_000)
/** An answer slower than this is a hang (writes are fsynced, but never take seconds on loopback). */
const ANSWER_TIMEOUT_MS = 15_000
/** Operations before the first memory reading: code paths warmed up, tables created. */
const WARM_UP_OPS = 200
/**
 * How far the daemon's RSS, after fuzzing and 3 quiet seconds, may exceed its RSS after the warm-up.
 * Measured over about 20 seeds: 79-94 MiB after the warm-up, 127-148 MiB at the end, so +41 to +63 MiB (V8's heap
 * grown by the large and deep bodies and not handed back, about a thousand entries, the change log). It
 * levels off: a soak of 12,000 operations ends at +63 MiB too. Keeping the large bodies (about 150 of
 * 1 MiB or more per run) would pass this bound; a leak of a few KiB per request would not, so run a soak too.
 */
const RSS_GROWTH_BOUND_KIB = 96 * 1024

// ---------------------------------------------------------------------------------------------------------
// A deterministic generator.

/** mulberry32 (the lab's seeded generator): small, fast and good enough to pick fuzz cases. */
const mulberry32 = seededRandom

class Rng {
  private readonly next: () => number
  constructor(seed: number) {
    this.next = mulberry32(seed)
  }
  float(): number {
    return this.next()
  }
  /** 0 ≤ n < max */
  int(max: number): number {
    return Math.floor(this.next() * max)
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T
  }
  /** One of `cases`, with probability proportional to its weight. */
  weighted<T>(cases: ReadonlyArray<readonly [number, T]>): T {
    let roll = this.next() * cases.reduce((n, [w]) => n + w, 0)
    for (const [w, c] of cases) {
      roll -= w
      if (roll < 0) return c
    }
    return (cases[cases.length - 1] as readonly [number, T])[1]
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
}

// ---------------------------------------------------------------------------------------------------------
// JSON values, entries and tables, valid and not.

/**
 * JSON text with pieces JSON.stringify cannot write (1e309, nesting thousands deep, bad tokens): a value
 * holds a marker string where such a piece goes, and `text()` splices the raw text in.
 */
class Gen {
  private readonly raws: string[] = []
  constructor(readonly r: Rng) {}

  raw(text: string): string {
    this.raws.push(text)
    return `\u0000raw:${this.raws.length - 1}\u0000`
  }

  text(value: unknown): string {
    return JSON.stringify(value).replace(/"\\u0000raw:(\d+)\\u0000"/g, (_, n: string) => this.raws[Number(n)] as string)
  }

  /** An object with exactly these own keys, `__proto__` included (an assignment would set the prototype). */
  obj(pairs: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
    const o: Record<string, unknown> = {}
    for (const [k, v] of pairs) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
    return o
  }

  /** A string from the odd corners of Unicode and JSON escaping, or random code points (lone surrogates too). */
  str(): string {
    const r = this.r
    if (r.chance(0.4)) return r.pick(ODD_STRINGS)
    if (r.chance(0.05)) return 'ñ🙂\u202e'.repeat(r.range(200, 1000))
    let s = ''
    const n = r.int(24)
    for (let i = 0; i < n; i++) s += r.chance(0.7) ? String.fromCharCode(r.range(32, 126)) : String.fromCodePoint(r.int(0x110000))
    return s
  }

  /** A valid JSON value: finite numbers, at most `depth` levels of containers. */
  value(depth = 4): unknown {
    const r = this.r
    if (depth > 0 && r.chance(0.3)) {
      const n = r.int(5)
      if (r.chance(0.5)) return Array.from({ length: n }, () => this.value(depth - 1))
      return this.obj(Array.from({ length: n }, () => [r.chance(0.3) ? r.pick(SPECIAL_KEYS) : this.str(), this.value(depth - 1)] as const))
    }
    return r.weighted<() => unknown>([
      [2, () => null],
      [2, () => r.chance(0.5)],
      [3, () => r.int(2 ** 31) - 2 ** 30],
      [2, () => (r.float() - 0.5) * 10 ** r.int(300)],
      [1, () => r.pick([0, -0, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 + 2])],
      // Finite however they are written: these parse to ordinary numbers.
      [1, () => this.raw(r.pick(['1e-400', '-0', '123456789012345678901234567890', '1E+2', '0.0000001e-300']))],
      [5, () => this.str()],
    ])()
  }

  /** A type name the daemon takes: mostly the shared few, sometimes a new one (up to 200 characters). */
  type(): string {
    const r = this.r
    if (r.chance(0.95)) return r.pick(TYPES)
    const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-'
    return Array.from({ length: r.range(1, 200) }, () => chars[r.int(chars.length)]).join('')
  }

  /** Mostly one of a few dozen keys, so that writes meet earlier copies of a key; sometimes an odd one. */
  key(): string {
    const r = this.r
    return r.chance(0.75) ? `k${r.int(40)}` : r.pick(SPECIAL_KEYS)
  }

  /** A valid TTL entry: sometimes without data, with a TTL the merge ignores (≤ 0), no clock or a huge one. */
  ttlEntry(): Record<string, unknown> {
    const r = this.r
    const pairs: Array<[string, unknown]> = []
    if (!r.chance(0.1)) pairs.push(['data', r.chance(0.1) ? null : r.chance(0.03) ? this.raw(deep(30)) : this.value()])
    pairs.push(['author', r.pick(AUTHORS)], ['bleachTTL', r.weighted([[8, r.range(1, 40)], [1, r.range(-3, 0)], [1, 2 ** 31 - 1]])])
    if (r.chance(0.7)) pairs.push(['clock', r.weighted([[6, String(NOW_MS + r.range(-1e6, 1e6))], [1, '0'], [1, r.pick(['9007199254740990', '9007199254740989', '4102444800000'])]])])
    // Fields malla does not know are kept as received (LibreMesh routers relay them too).
    if (r.chance(0.1)) pairs.push([r.pick(['x-extra', 'lastModified', '__proto__', 'clock2']), this.value(2)])
    return this.obj(pairs)
  }

  mwEntry(): Record<string, unknown> {
    const r = this.r
    const pairs: Array<[string, unknown]> = []
    if (!r.chance(0.1)) pairs.push(['data', this.value()])
    pairs.push(['author', r.pick(AUTHORS)], ['changes', r.int(30)], ['fortune', r.chance(0.9) ? r.range(1, 100_000) : r.float() * 1e6], ['lastModified', r.int(2 ** 31)])
    return this.obj(pairs)
  }

  entry(flavour: Flavour): Record<string, unknown> {
    return flavour === 'ttl' ? this.ttlEntry() : this.mwEntry()
  }

  /** A valid table of `flavour`, `[key, entry]` in order. */
  pairs(flavour: Flavour, max = 30): Array<[string, unknown]> {
    const n = this.r.int(max + 1)
    return Array.from({ length: n }, () => [this.key(), this.entry(flavour)])
  }

  /** One entry made invalid in a single way; `why` says how (for the failure message). */
  badEntry(flavour: Flavour): { entry: unknown; why: string } {
    const r = this.r
    const e = this.entry(flavour)
    const set = (k: string, v: unknown) => Object.defineProperty(e, k, { value: v, enumerable: true, writable: true, configurable: true })
    const cases: Array<[string, () => unknown]> = [
      ['no author', () => delete e.author],
      ['author not a string', () => set('author', r.pick([1, null, true, ['F'], { a: 1 }]))],
      ['data 1e309', () => set('data', this.raw(r.pick(['1e309', '-1e309', '1e99999'])))],
      ['1e309 inside data', () => set('data', { a: [1, this.raw('1e309')] })],
      ['data too deep (31)', () => set('data', this.raw(deep(31)))],
      ['data hundreds deep', () => set('data', this.raw(deep(r.range(100, 900))))],
      ['data thousands deep', () => set('data', this.raw(deep(r.range(1000, 5000), r.chance(0.5))))],
      ['extra field too deep', () => set('x-extra', this.raw(deep(r.range(31, 2000))))],
      ['extra field 1e309', () => set('x-extra', this.raw('1e309'))],
      ['entry over 64 KiB', () => set('data', 'x'.repeat(r.range(66_000, 120_000)))],
      ['entry not an object', () => r.pick<unknown>(['entry', 5, null, true, [], [1, 2]])],
    ]
    if (flavour === 'ttl') {
      cases.push(
        ['no bleachTTL', () => delete e.bleachTTL],
        ['bleachTTL not an integer', () => set('bleachTTL', r.pick<unknown>(['3', 1.5, null, 2 ** 31, -(2 ** 31) - 1, 1e20, this.raw('1e309'), this.raw('-1e309')]))],
        ['bad clock', () => set('clock', r.pick<unknown>(['01', '-1', '9007199254740993', '9007199254740991', '99999999999999999999', '', ' 1', '1 ', '1e3', '0x10', '1.5', '+1', '١٢٣', 12, null, ['1']]))],
      )
    } else {
      cases.push(
        ['bad changes', () => set('changes', r.pick<unknown>([-1, 1.5, '1', null, this.raw('1e309')]))],
        ['no changes', () => delete e.changes],
        ['bad fortune', () => set('fortune', r.pick<unknown>(['x', null, this.raw('1e309'), this.raw('-1e309')]))],
        ['no fortune', () => delete e.fortune],
      )
    }
    const [why, apply] = r.pick(cases)
    const replaced = apply()
    return { entry: why === 'entry not an object' ? replaced : e, why }
  }

  tableText(pairs: ReadonlyArray<readonly [string, unknown]>): string {
    return this.text(this.obj(pairs))
  }
}

type Flavour = 'ttl' | 'multiwriter'

/** Clocks near a fixed "now", so that a seed replays the same entries on any day. */
const NOW_MS = 1_764_042_727_123

const ODD_STRINGS = [
  '', ' ', 'ñandú', '日本語', '🙂', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}', '\u202Eevil\u202C', '\u0000', 'a\u0000b', '\ud800', '\udfff', 'x\udc00y',
  '\ufeff', '\u2028\u2029', '\\', '"', '\\"', '</script><script>alert(1)</script>', '%00', '%2e%2e%2f', 'a\nb\r\n', '\u00ad', 'ｆｕｌｌ', '\u0301',
  '__proto__', 'constructor', '{"a":1}', 'null', '1e309', 'NaN',
]
const SPECIAL_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', ' ', '🙂', '\ud800', '\u0000', 'k'.repeat(4096), 'é'.repeat(300), '../../etc/passwd', '10.13.0.1', 'a.0>b', 'x\ny']
const AUTHORS = ['F', 'G', 'node-a', 'pagepeer1', '', '🙂', '\ud800', 'a'.repeat(1000)]
/** Names the daemon takes: tables that fill up over the run, so that writes meet earlier ones. */
const TYPES = ['fuzz', 'hosts', 'malla-answers', 'malla-offers', 'a', 'T_1-x', 'Z'.repeat(200)]
/** Only ever sent invalid writes: it must still be empty at the end, since a refused request changes nothing. */
const REFUSED = 'fuzz-refused'
/** Names it must refuse (as they go in a path: what a client cannot send raw is percent-encoded). */
const BAD_TYPES = ['..', '.', '../x', '..%2fx', '%2e%2e', 'Z'.repeat(201), 'x'.repeat(300), 'a%20b', '%C3%A9', 'a.b', '%00', 'a%0Ab', '~', 'a:b', '*', '%']

/** `n` levels of nesting as JSON text: arrays, or objects with a key each. */
function deep(n: number, objects = false): string {
  return objects ? '{"a":'.repeat(n) + '1' + '}'.repeat(n) : '['.repeat(n) + ']'.repeat(n)
}

// ---------------------------------------------------------------------------------------------------------
// Operations: what is sent, and what is expected back.

/** `ok`: must be answered 2xx/304; `error`: must be refused with a 4xx; `any`: either, but never a 5xx. */
type Expect = 'ok' | 'error' | 'any'

interface HttpCase {
  readonly kind: 'http'
  readonly what: string
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly body?: Buffer
  /** Sent as 1 KiB chunks with no Content-Length, as the routers' uclient-fetch does. */
  readonly chunked?: boolean
  /** A loopback source address other than 127.0.0.1 (reconciliation budgets are per address). */
  readonly localAddress?: string
  readonly expect: Expect
  /** 429 BUSY is a fair answer here (reconciliation's work budget applies even to this machine). */
  readonly busyOk?: boolean
  /** How to check a 200 answer's body. */
  readonly answer?: 'ttl-table' | 'mw-table' | 'json' | 'reconcile-1' | 'reconcile-2' | 'outcomes' | 'info' | 'text'
}

interface FeedCase {
  readonly kind: 'feed'
  readonly what: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly readMs: number
}

interface RawCase {
  readonly kind: 'raw'
  readonly what: string
  readonly bytes: Buffer
  /** Close our side this long after sending, answered or not (a client that goes away mid-request). */
  readonly closeAfterMs?: number
}

interface FrameCase {
  readonly kind: 'frame'
  readonly what: string
  readonly data: Buffer | string
  readonly binary: boolean
  /** The id the daemon will read off the frame: a reply with it is awaited; null: the reply carries none. */
  readonly id: number | null
  readonly expect: Expect
}

interface DatagramCase {
  readonly kind: 'datagram'
  readonly what: string
  readonly data: Buffer
  /** Set for a well-formed Binding request, which must be answered. */
  readonly transaction?: Buffer
}

type Case = HttpCase | FeedCase | RawCase | FrameCase | DatagramCase

interface Env {
  /** A feed cursor of this run of the daemon (to resume from). */
  cursor: string
  /** People with keys, and sessions of theirs, that sign (and forge) the records of a room's signed tables. */
  signed: SignedPeople
  /** Loopback ports nothing listens on: the only URLs a `sync` is ever given. */
  deadPorts: number[]
  /** Unique push frame ids. */
  nextId: number
}

const TEXT_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x', '']

function generate(i: number, env: Env): Case {
  const r = new Rng((SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0)
  const g = new Gen(r)
  return r.weighted<() => Case>([
    [30, () => libremeshCase(g)],
    [12, () => signedCase(g, env)],
    [11, () => reconcileCase(g)],
    [20, () => apiCase(g, env)],
    [8, () => otherHttpCase(g)],
    [3, () => feedCase(g, env)],
    [2, () => rawCase(g)],
    [16, () => frameCase(g, env)],
    [10, () => datagramCase(g)],
  ])()
}

/** A body for the LibreMesh endpoint: its text, and whether it is valid (`any`: it may be, by chance). */
function tableBody(g: Gen, flavour: Flavour): { text: string | Buffer; valid: boolean | 'any'; what: string } {
  const r = g.r
  return r.weighted<() => { text: string | Buffer; valid: boolean | 'any'; what: string }>([
    [30, () => ({ text: g.tableText(g.pairs(flavour)), valid: true, what: 'valid table' })],
    [3, () => ({ text: g.tableText(g.pairs(flavour, 300)), valid: true, what: 'valid table, up to 300 entries' })],
    [3, () => ({ text: r.pick(['[]', '{}', ' {} ', '[]\n']), valid: true, what: 'empty table' })],
    [3, () => ({ text: r.pick(['', ' ', '\n\t ']), valid: true, what: 'empty body' })],
    [2, () => ({ text: g.text(g.obj(g.pairs(flavour, 5))).replace(/\//g, '\\/'), valid: true, what: 'valid table with \\/ escapes' })],
    [12, () => {
      const bad = g.badEntry(flavour)
      const pairs: Array<[string, unknown]> = [...g.pairs(flavour, 5), [g.key(), bad.entry]]
      return { text: g.tableText(pairs), valid: false, what: `table with one bad entry: ${bad.why}` }
    }],
    [4, () => ({ text: g.tableText([[r.pick(['x'.repeat(4097), 'x'.repeat(5000), '🙂'.repeat(3000)]), g.entry(flavour)]]), valid: false, what: 'key over 4096 characters' })],
    [3, () => ({ text: g.tableText(g.pairs(flavour === 'ttl' ? 'multiwriter' : 'ttl', 5).concat([[g.key(), g.entry(flavour === 'ttl' ? 'multiwriter' : 'ttl')]])), valid: false, what: 'table of the other flavour' })],
    [5, () => ({ text: r.pick(['[1]', '[{}]', '"table"', '1', 'null', 'true', '[[]]', '{"k":[]}', '{"k":null}', '{"k":"v"}']), valid: false, what: 'not a table' })],
    [6, () => {
      const good = g.tableText(g.pairs(flavour, 5))
      const text = r.pick([
        '{', '}', '{"a":}', "{'a':1}", '[1,]', '{"a":1,}', '\ufeff{}', 'NaN', '{"a":1}{"b":2}', 'undefined', '{"a":1e309}', '{"k":{"data":1e309,"author":"F","bleachTTL":1}}',
        good.slice(0, r.int(good.length)) || '{',
        `${good}x`,
      ])
      return { text, valid: false, what: 'bad JSON' }
    }],
    [4, () => ({ text: r.pick([deep(r.range(1000, 100_000)), deep(r.range(1000, 20_000), true), `{"k":${deep(r.range(300, 3000), true)}}`]), valid: false, what: 'nesting thousands deep' })],
    // Invalid UTF-8 reads as U+FFFD: valid JSON unless a quote, backslash or control byte came up.
    [2, () => ({ text: Buffer.concat([Buffer.from('{"k":{"data":"'), r.bytes(r.range(1, 200)), Buffer.from('","author":"F","bleachTTL":3}}')]), valid: 'any', what: 'random bytes in a string' })],
    // After a control character, so that no draw is blank or valid JSON by chance.
    [2, () => ({ text: Buffer.concat([Buffer.from([1]), r.bytes(r.range(0, 2000))]), valid: false, what: 'random bytes' })],
    [2, () => ({ text: `{"k":{"data":"${'x'.repeat(r.range(1024 * 1024 + 1, 1400 * 1024))}","author":"F","bleachTTL":3}}`, valid: false, what: 'body over 1 MiB' })],
  ])()
}

// ---------------------------------------------------------------------------------------------------------
// A room's signed tables (protocol §18.2-18.4): valid records and every way of forging them.

const SIGNED_ROOM = 'fuzz'
const SIGNED_TABLES = {
  offers: roomOwnType(SIGNED_ROOM, '_offers'),
  answers: roomOwnType(SIGNED_ROOM, '_answers'),
  presence: roomOwnType(SIGNED_ROOM, '_presence'),
  keys: roomOwnType(SIGNED_ROOM, KEYS_TABLE),
  mail: roomOwnType(SIGNED_ROOM, MAIL_TABLE),
} as const
type SignedTable = keyof typeof SIGNED_TABLES

interface SignedPeople {
  readonly people: readonly Identity[]
  /** Two sessions of each person, with nonces fixed for the run. */
  readonly sessions: readonly RecordSigner[]
}

async function signedPeople(): Promise<SignedPeople> {
  const people = await Promise.all(['Ana', 'Bea', 'Mallory'].map((n) => createIdentity(n)))
  const sessions = people.flatMap((p, i) => [0, 1].map((k) => recordSigner(p, new Uint8Array(12).fill(i * 2 + k + 1))))
  return { people, sessions }
}

/** A table of a few signed-table entries, each valid or forged one way; the daemon must keep only the valid. */
function signedCase(g: Gen, env: Env): HttpCase {
  const r = g.r
  const table = r.pick(Object.keys(SIGNED_TABLES) as SignedTable[])
  const type = SIGNED_TABLES[table]
  const made = Array.from({ length: r.range(1, 6) }, () => signedEntry(g, env.signed, table, type))
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(r.chance(0.4) ? { 'x-malla-sync': 'push' } : {}) }
  return {
    kind: 'http',
    what: `signed ${table}: ${made.map((m) => m.what).join(', ')}`,
    method: 'POST',
    path: `/cgi-bin/shared-state/${type}`,
    headers,
    body: Buffer.from(g.tableText(made.map((m) => [m.key, m.entry]))),
    expect: 'ok',
    answer: 'ttl-table',
  }
}

function signedEntry(g: Gen, s: SignedPeople, table: SignedTable, type: string): { key: string; entry: Record<string, unknown>; what: string } {
  const r = g.r
  const ttl = r.weighted([[9, r.range(1, 40)], [1, r.pick([800, 1440, 1441, 5000, 2 ** 31 - 1])]])
  const entry = (data: unknown, author: string) => ({ data, author, bleachTTL: ttl })
  const other = <T>(xs: readonly T[], not: T): T => r.pick(xs.filter((x) => x !== not))
  if (table === 'keys') {
    const person = r.pick(s.people)
    const sign = keySigner(person)
    const data = { v: 1, pk: toBase64Url(person.publicKeyBytes), n: person.name }
    return r.weighted<() => { key: string; entry: Record<string, unknown>; what: string }>([
      [4, () => ({ key: person.fingerprint, entry: entry(sign(type, person.fingerprint, data), 'x'), what: 'valid key' })],
      [1, () => ({ key: other(s.people, person).fingerprint, entry: entry(sign(type, other(s.people, person).fingerprint, data), 'x'), what: 'own key under another fingerprint' })],
      [1, () => ({ key: person.fingerprint, entry: entry(sign(type, person.fingerprint, { ...data, pk: toBase64Url(other(s.people, person).publicKeyBytes) }), 'x'), what: "another's key signed as own" })],
      [1, () => ({ key: person.fingerprint, entry: entry({ ...(sign(type, person.fingerprint, data) as object), n: 'renamed' }, 'x'), what: 'changed after signing' })],
      [1, () => ({ key: person.fingerprint, entry: entry(r.pick([null, { v: 1 }, { ...data, pgp: g.value(2) }, { ...data, pk: g.str() }]), 'x'), what: 'unsigned or garbage' })],
    ])()
  }
  if (table === 'mail') {
    const [to, from, third] = [r.pick(s.people), r.pick(s.people), r.pick(s.people)]
    const key = `${to.fingerprint}.${from.fingerprint}.m${r.int(30)}`
    const m = r.chance(0.05) ? 'x'.repeat(r.range(8193, 20_000)) : `-----BEGIN PGP MESSAGE-----\n${g.str()}`
    return r.weighted<() => { key: string; entry: Record<string, unknown>; what: string }>([
      [5, () => ({ key, entry: entry(keySigner(from)(type, key, { v: 1, m }), 'x'), what: 'message' })],
      [2, () => ({ key, entry: entry(keySigner(r.chance(0.5) ? to : from)(type, key, { v: 1, gone: true }), 'x'), what: 'removal by an end' })],
      [1, () => ({ key, entry: entry(keySigner(third)(type, key, r.chance(0.5) ? { v: 1, gone: true } : { v: 1, m }), 'x'), what: 'signed by anyone' })],
      [1, () => ({ key, entry: entry({ ...(keySigner(from)(type, key, { v: 1, m }) as object), m: 'changed' }, 'x'), what: 'changed after signing' })],
      [1, () => ({ key: r.pick([`${to.fingerprint}.${from.fingerprint}.UPPER`, `${to.fingerprint}.x.m1`, g.key()]), entry: entry(keySigner(from)(type, key, { v: 1, m }), 'x'), what: 'bad key' })],
      [1, () => ({ key, entry: entry(r.pick([null, { v: 1, m }, g.value(2)]), 'x'), what: 'unsigned or garbage' })],
    ])()
  }
  const session = r.pick(s.sessions)
  const keyOf = (id: string) => (table === 'offers' ? `${id}.${r.int(4)}` : table === 'answers' ? `${r.pick(s.sessions).peerId}.${r.int(4)}>${id}` : id)
  const key = keyOf(session.peerId)
  const data = { v: 1, x: g.str(), exp: NOW_MS + r.int(100_000) }
  return r.weighted<() => { key: string; entry: Record<string, unknown>; what: string }>([
    [4, () => ({ key, entry: entry(session.sign(type, key, data), session.peerId), what: 'valid record' })],
    [1, () => ({ key, entry: entry(session.sign(type, key, { v: 1, gone: true }), session.peerId), what: 'signed withdrawal' })],
    [1, () => ({ key, entry: entry(session.sign(type, key, data), other(s.sessions, session).peerId), what: 'written by another' })],
    [1, () => ({ key, entry: entry(other(s.sessions, session).sign(type, key, data), session.peerId), what: "another session's signature" })],
    [1, () => ({ key, entry: entry({ ...(session.sign(type, key, data) as object), exp: 1 }, session.peerId), what: 'changed after signing' })],
    [1, () => ({ key, entry: entry(r.pick([null, data, { ...data, pgp: g.value(2) }, { ...data, pgp: { k: g.str(), n: g.str(), sig: g.str() } }]), session.peerId), what: 'unsigned or garbage' })],
    [1, () => ({ key: keyOf(`legacy${r.int(10)}peer00`), entry: entry(r.chance(0.5) ? data : null, 'anyone'), what: 'a peer without a key' })],
  ])()
}

/**
 * What the daemon holds of the signed tables, read against the rules (a fresh admission, entry by entry, with
 * the rest of the table as what it holds): a fault for every entry those rules would not have taken in.
 */
async function signedTableFaults(d: RunningDaemon): Promise<{ faults: string[]; kept: Record<SignedTable, number> }> {
  const faults: string[] = []
  const kept = { offers: 0, answers: 0, presence: 0, keys: 0, mail: 0 }
  for (const [table, type] of Object.entries(SIGNED_TABLES) as Array<[SignedTable, string]>) {
    const held = new Map(Object.entries((await getJson(d, `/malla/v1/tables/${type}`)) as Record<string, object>))
    kept[table] = held.size
    for (const [key, entry] of held) {
      const rest = new Map(held)
      rest.delete(key)
      // The TTL a router holds has been bleached since; the rules are about the one received.
      const admitted = roomAdmission()({ flavour: 'ttl', type: type as never }, new Map([[key, { ...entry, bleachTTL: Math.min((entry as { bleachTTL: number }).bleachTTL, MAX_MAIL_TTL) }]]), rest)
      if (!admitted.has(key)) faults.push(`${type} ${key}: kept, but the rules refuse it: ${JSON.stringify(entry).slice(0, 300)}`)
    }
    if (table === 'mail') {
      const waiting = new Map<string, number>()
      for (const [key, entry] of held) if (isWaiting((entry as { data?: unknown }).data)) waiting.set(key.split('.')[1] as string, (waiting.get(key.split('.')[1] as string) ?? 0) + 1)
      for (const [sender, n] of waiting) if (n > MAIL_PER_SENDER) faults.push(`${type}: ${n} messages waiting from ${sender}, over the quota of ${MAIL_PER_SENDER}`)
    }
  }
  return { faults, kept }
}

function libremeshCase(g: Gen): HttpCase {
  const r = g.r
  const flavour: Flavour = r.chance(0.7) ? 'ttl' : 'multiwriter'
  const badType = r.chance(0.08)
  let type = badType ? r.pick(BAD_TYPES) : g.type()
  const endpoint = flavour === 'ttl' ? 'shared-state' : 'shared-state-multiwriter'
  const body = tableBody(g, flavour)
  let bytes = Buffer.from(body.text)
  let valid = badType || type.includes('/') ? false : body.valid
  const gzip = r.chance(0.35)
  let what = body.what
  if (gzip) {
    const how = r.weighted([[8, 'gzip'], [1, 'not gzip'], [1, 'gzip cut short'], [1, 'gzip bomb']] as const)
    if (how === 'gzip') bytes = gzipSync(bytes)
    else if (how === 'gzip cut short') {
      bytes = gzipSync(bytes).subarray(0, r.range(1, 15))
      valid = false
    } else if (how === 'gzip bomb') {
      // A few KiB that inflate past the 1 MiB limit.
      bytes = gzipSync(Buffer.alloc(r.range(1100, 4000) * 1024, 0x20))
      valid = false
    } else if (bytes.length > 0) valid = false
    what += `, ${how}`
  }
  if (valid === false && !badType && r.chance(0.3)) type = REFUSED
  const query = gzip ? r.pick(['?gzip', '?gzip=1', '?x=1&gzip', '?nogzip']) : r.pick(['', '', '', '?', '?x=1', '?gzi'])
  const headers: Record<string, string> = { 'content-type': r.pick(TEXT_TYPES) }
  const push = r.chance(0.4)
  if (push) headers['x-malla-sync'] = 'push'
  else if (r.chance(0.05)) headers['x-malla-sync'] = r.pick(['PUSH', 'pull', '', 'push, push'])
  if (!headers['content-type']) delete headers['content-type']
  return {
    kind: 'http',
    what: `${flavour} sync, ${what}${push ? ', push' : ''}`,
    method: 'POST',
    path: `/cgi-bin/${endpoint}/${type}${query}`,
    headers,
    body: bytes,
    chunked: r.chance(0.3),
    expect: valid === 'any' ? 'any' : valid ? 'ok' : 'error',
    answer: flavour === 'ttl' ? 'ttl-table' : 'mw-table',
  }
}

function reconcileCase(g: Gen): HttpCase {
  const r = g.r
  const flavour: Flavour = r.chance(0.7) ? 'ttl' : 'multiwriter'
  const type = g.type()
  const buckets = 2 ** r.range(4, 12)
  const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[r.int(16)]).join('')
  const summary = (): Record<string, unknown> => ({ v: 1, flavour, type, buckets, digests: r.chance(0.3) ? '0'.repeat(buckets * 16) : hex(buckets * 16) })
  const exchange = (): Record<string, unknown> => ({ v: 1, flavour, type, entries: g.obj(g.pairs(flavour, 20)), want: Array.from({ length: r.int(30) }, () => g.key()) })
  const c = r.weighted<() => { body: string | Buffer; valid: boolean; what: string; round?: 1 | 2 }>([
    [10, () => ({ body: g.text(summary()), valid: true, what: 'round 1', round: 1 })],
    [10, () => ({ body: g.text(exchange()), valid: true, what: 'round 2', round: 2 })],
    [8, () => {
      const s = summary()
      const [why, change] = r.pick<[string, () => void]>([
        ['buckets not a power of two', () => (s.buckets = r.pick([0, 1, 15, 17, 100, 3000]))],
        ['buckets out of range', () => (s.buckets = r.pick([8, 8192, 2 ** 30, -16, 1.5, g.raw('1e309')]))],
        ['digests of the wrong length', () => (s.digests = hex(buckets * 16 + r.pick([-1, 1, 16, -16])))],
        ['digests upper case', () => (s.digests = hex(buckets * 16).toUpperCase().replace(/[0-9]/g, 'A'))],
        ['digests not hex', () => (s.digests = 'g'.repeat(buckets * 16))],
        ['digests nested', () => (s.digests = g.raw(deep(r.range(100, 3000))))],
        ['v 2', () => (s.v = 2)],
        ['no v', () => delete s.v],
        ['bad flavour', () => (s.flavour = r.pick(['TTL', 'x', '', null]))],
        ['bad type', () => (s.type = r.pick(['', '../x', 'x'.repeat(201), 'a b', 1]))],
        ['an extra field', () => (s.extra = 1)],
      ])
      change()
      return { body: g.text(s), valid: false, what: `round 1, ${why}` }
    }],
    [8, () => {
      const x = exchange()
      const [why, change] = r.pick<[string, () => void]>([
        ['entries an array', () => (x.entries = [1])],
        ['entries null', () => (x.entries = null)],
        ['a bad entry', () => (x.entries = g.obj([[g.key(), g.badEntry(flavour).entry]]))],
        ['entries of the other flavour', () => (x.entries = g.obj([[g.key(), g.entry(flavour === 'ttl' ? 'multiwriter' : 'ttl')]]))],
        ['want not strings', () => (x.want = [1, null])],
        ['want a string', () => (x.want = 'k1')],
        ['want over 20,000 keys', () => (x.want = Array.from({ length: 20_001 }, (_, n) => `k${n}`))],
        ['want nested', () => (x.want = g.raw(deep(r.range(100, 5000))))],
        ['no want', () => delete x.want],
        ['bad type', () => (x.type = '../x')],
      ])
      if (r.chance(0.3)) x.type = REFUSED
      change()
      return { body: g.text(x), valid: false, what: `round 2, ${why}` }
    }],
    [4, () => ({ body: r.pick(['', '{', '[]', 'null', '{}', '{"digests":1}', deep(r.range(1000, 50_000))]), valid: false, what: 'bad body' })],
    [1, () => ({ body: `{"v":1,"flavour":"ttl","type":"fuzz","buckets":16,"digests":"${'0'.repeat(1024 * 1024)}"}`, valid: false, what: 'body over 1 MiB' })],
  ])()
  const text = Buffer.from(c.body)
  // Work budgets are per address, and bad requests cost a lot: most requests come from other loopback
  // addresses so that the budget's 429 does not hide the rest, and some from one busy address.
  const localAddress = r.chance(0.7) ? `127.0.${r.int(4)}.${r.range(2, 40)}` : undefined
  return {
    kind: 'http',
    what: `reconcile ${flavour} ${c.what}`,
    method: 'POST',
    path: '/malla/v1/reconcile',
    headers: { 'content-type': 'application/json' },
    body: text,
    chunked: r.chance(0.2),
    localAddress,
    expect: c.valid ? 'ok' : 'error',
    busyOk: true,
    answer: c.round === 1 ? 'reconcile-1' : c.round === 2 ? 'reconcile-2' : undefined,
  }
}

function apiCase(g: Gen, env: Env): HttpCase {
  const r = g.r
  const flavour: Flavour = r.chance(0.75) ? 'ttl' : 'multiwriter'
  const badType = r.chance(0.08)
  let type = badType ? r.pick(BAD_TYPES) : g.type()
  const base = () => `/malla/v1/${flavour === 'ttl' ? 'tables' : 'multiwriter'}/${type}`
  const action = flavour === 'ttl' ? r.pick(['get', 'insert', 'insert', 'insert', 'remove', 'bleach', 'sync']) : r.pick(['get', 'insert', 'insert', 'sync', 'remove', 'bleach'])
  const ttl = action !== 'get' && r.chance(0.2) ? r.weighted<[string, boolean]>([[3, [r.pick(['1', '30', '2147483647']), true]], [2, [r.pick(['0', '-1', '1.5', 'abc', '', '2147483648', '1e3', '%205', '99999999999999999999']), false]]]) : undefined
  const query = ttl ? `?ttl=${ttl[0]}` : ''
  let valid = !badType && !type.includes('/') && (ttl?.[1] ?? true)
  // ok: true (valid), false (invalid) or 'any' (either answer is fair).
  const http = (what: string, method: string, body: string | Buffer | undefined, ok: boolean | 'any', answer?: HttpCase['answer']): HttpCase => ({
    kind: 'http',
    what: `${flavour} ${action}${ttl ? ` ttl=${ttl[0]}` : ''}, ${what}`,
    method,
    path: action === 'get' ? base() : `${base()}/${action}${query}`,
    headers: { 'content-type': r.pick(TEXT_TYPES) || 'application/json' },
    body: body === undefined ? undefined : Buffer.from(body),
    chunked: body !== undefined && r.chance(0.2),
    expect: ok === 'any' ? 'any' : ok && valid ? 'ok' : 'error',
    answer,
  })
  switch (action) {
    case 'get':
      valid = !badType && !type.includes('/')
      return http('get', 'GET', undefined, true, flavour === 'ttl' ? 'ttl-table' : 'mw-table')
    case 'insert': {
      const c = r.weighted<() => [string, string, boolean | 'any']>([
        [10, () => ['valid', g.text(g.obj(Array.from({ length: r.int(10) }, () => [g.key(), g.value()] as const))), true]],
        [2, () => ['empty', r.pick(['', '{}', '[]']), true]],
        [1, () => ['data 30 deep', g.text(g.obj([[g.key(), g.raw(deep(30))]])), true]],
        [2, () => ['data 31 deep', g.text(g.obj([[g.key(), g.raw(deep(31))]])), false]],
        [2, () => ['data thousands deep', g.text(g.obj([[g.key(), g.raw(deep(r.range(1000, 10_000), r.chance(0.5)))]])), false]],
        [2, () => ['data 1e309', g.text(g.obj([[g.key(), g.raw(r.pick(['1e309', '[-1e309]', '{"a":1e400}']))]])), false]],
        [1, () => ['data over 60 KiB', g.text(g.obj([[g.key(), 'x'.repeat(r.range(62 * 1024, 200 * 1024))]])), false]],
        [2, () => ['key of 5000 characters', g.text(g.obj([['k'.repeat(r.pick([4097, 5000])), 1]])), false]],
        [2, () => ['not an object', r.pick(['[1]', '"x"', '1', '{', 'true']), false]],
        // The daemon reads a JSON null as no body at all (an empty insert); refusing it would be as fair.
        [1, () => ['null', 'null', 'any']],
        [1, () => ['body over 1 MiB', `{"k":"${'x'.repeat(1100 * 1024)}"}`, false]],
      ])()
      if (c[2] === false && !badType && r.chance(0.3)) type = REFUSED
      return http(c[0], 'POST', c[1], c[2], 'json')
    }
    case 'remove': {
      const c = r.weighted<() => [string, string, boolean | 'any']>([
        [10, () => ['valid', JSON.stringify(Array.from({ length: r.int(8) }, () => g.key())), true]],
        [1, () => ['empty', r.pick(['', '[]']), true]],
        [3, () => ['not a key list', r.pick(['[1]', '{"k":1}', '"k"', `["${'k'.repeat(5000)}"]`, deep(2000), '[']), false]],
        [1, () => ['null', 'null', 'any']],
      ])()
      return http(c[0], 'POST', c[1], flavour === 'ttl' ? c[2] : false, 'json')
    }
    case 'bleach': {
      const c = r.weighted<() => [string, string, boolean]>([
        [5, () => ['no body', '', true]],
        [1, () => ['some JSON', g.text(g.value()), true]],
        [1, () => ['bad JSON', '{', false]],
      ])()
      return http(c[0], 'POST', c[1], c[2] && flavour === 'ttl', flavour === 'ttl' ? 'ttl-table' : undefined)
    }
    default: {
      // Only ever URLs on loopback ports nothing listens on: a sync may post there and nowhere else.
      const dead = () => `http://127.0.0.1:${r.pick(env.deadPorts)}`
      const c = r.weighted<() => [string, string, boolean]>([
        [3, () => ['no URLs (the peers: none)', r.pick(['', '[]']), true]],
        [6, () => ['dead URLs', JSON.stringify(Array.from({ length: r.range(1, 4) }, () => `${dead()}${r.pick(['/cgi-bin/shared-state/x', '/cgi-bin/shared-state-multiwriter/x', '/', '', '/x?gzip', '/../../x'])}`)), true]],
        [3, () => ['not URLs', r.pick(['[1]', '{}', `"${dead()}/"`, '["ftp://127.0.0.1:1/"]', '["127.0.0.1"]', '[null]', '{']), false]],
      ])()
      return http(c[0], 'POST', c[1], c[2], 'outcomes')
    }
  }
}

/** Everything else: the page, the bundle, info, unknown paths, wrong methods. */
function otherHttpCase(g: Gen): HttpCase {
  const r = g.r
  const http = (what: string, method: string, path: string, expect: Expect, answer?: HttpCase['answer'], headers: Record<string, string> = {}, body?: Buffer): HttpCase => ({ kind: 'http', what, method, path, headers, body, expect, answer })
  return r.weighted<() => HttpCase>([
    [3, () => http('info', 'GET', '/malla/v1/info', 'ok', 'info')],
    [2, () => http('list', 'GET', r.pick(['/malla/v1/tables', '/malla/v1/tables?x=1']), 'ok', 'json')],
    [3, () => http('bundle', 'GET', r.pick(['/malla.js', '/malla.js.map', '/malla.js?v=1']), 'ok', 'text', r.pick<Record<string, string>>([{}, { 'accept-encoding': 'gzip' }, { 'if-none-match': r.pick(['*', '"x"', 'W/"x"', '', 'x'.repeat(3000)]) }]))],
    [2, () => http('pages', 'GET', r.pick(['/', '/index.html', '/debug/', '/debug/room', '/debug/room?x=<script>']), 'ok', 'text')],
    [4, () => http('unknown path', r.pick(['GET', 'POST']), r.pick([
      '/x', '/malla', '/malla/v1', '/malla/v1/', '/malla/v1/tables/a/b/c', '/malla/v1/tables/a/insert/x', '/malla/v1/tables/a/get', '/cgi-bin/shared-state', '/cgi-bin/shared-state/',
      '/cgi-bin/shared-state/a/b', '/cgi-bin/shared-state-multiwriter', '//', '/%00', '/malla.js/x', '/malla.jsx', '/room/', '/../etc/passwd', '/malla/v1/push', '/cgi-bin/shared-state-x/a',
      `/${'a'.repeat(r.range(1000, 7000))}`, '/malla/v1/info/',
    ]), 'error')],
    [6, () => {
      const [path, allowed] = r.pick<[string, string]>([
        ['/cgi-bin/shared-state/fuzz', 'POST'], ['/cgi-bin/shared-state-multiwriter/fuzz', 'POST'], ['/malla/v1/reconcile', 'POST'], ['/malla/v1/tables', 'GET'], ['/malla/v1/tables/fuzz', 'GET'],
        ['/malla/v1/tables/fuzz/insert', 'POST'], ['/malla/v1/tables/fuzz/sync', 'POST'], ['/malla/v1/multiwriter/fuzz', 'GET'], ['/malla/v1/info', 'GET'], ['/malla/v1/events', 'GET'],
        ['/malla.js', 'GET'], ['/debug/room', 'GET'], ['/', 'GET'],
      ])
      // HEAD is GET without the body (RFC 9110 §9.3.2): the app's files answer it, so it is no wrong method for GET.
      const method = r.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'].filter((m) => m !== allowed && !(allowed === 'GET' && m === 'HEAD')))
      const body = method === 'GET' || method === 'HEAD' || r.chance(0.5) ? undefined : Buffer.from('{"k":{"data":1,"author":"F","bleachTTL":3}}')
      return http(`wrong method for ${allowed}`, method, path, 'error', undefined, body ? { 'content-type': 'application/json' } : {}, body)
    }],
  ])()
}

function feedCase(g: Gen, env: Env): FeedCase {
  const r = g.r
  const params: string[] = []
  const since = r.weighted<() => string | undefined>([
    [3, () => undefined],
    [3, () => env.cursor],
    [2, () => r.pick(['x', '', '1.2', '.', `${env.cursor.split('.')[0]}.999999999`, `${env.cursor.split('.')[0]}.-1`, `${env.cursor.split('.')[0]}.1e3`, 'a'.repeat(5000), '%F0%9F%99%82', '0.0'])],
  ])()
  const header = since !== undefined && r.chance(0.3)
  if (since !== undefined && !header) params.push(`since=${since}`)
  if (r.chance(0.5)) params.push(`types=${r.pick([TYPES.slice(0, 3).join(','), 'fuzz', ',,', '', '..', 'x'.repeat(300), 'a,b,c,d,e,f'])}`)
  return {
    kind: 'feed',
    what: `feed ${params.join('&')}${header ? ` last-event-id=${since}` : ''}`,
    path: `/malla/v1/events${params.length > 0 ? `?${params.join('&')}` : ''}`,
    headers: header ? { 'last-event-id': since as string } : {},
    readMs: r.range(10, 200),
  }
}

/** Bytes on a TCP socket that no HTTP client library would send. */
function rawCase(g: Gen): RawCase {
  const r = g.r
  const [what, text, closeAfterMs] = r.pick<[string, string | Buffer, number?]>([
    ['garbage request line', 'GARBAGE\r\n\r\n'],
    ['random bytes', r.bytes(r.range(1, 3000))],
    ['unknown method', 'BREW /malla/v1/info HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['headers over 16 KiB', `GET /malla/v1/info HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['Content-Length and Transfer-Encoding', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'],
    ['bad chunk size', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
    ['negative Content-Length', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'],
    ['declared length over the limit', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}'],
    ['body cut short, then gone', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"k":{"data":1,', 200],
    ['chunked body cut short, then gone', 'POST /malla/v1/reconcile HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"v":1,"flavour"', 200],
    ['headers cut short, then gone', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nContent-Le', 200],
    ['absolute URI', 'GET http://127.0.0.1/malla/v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['no slash', 'GET malla/v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['HTTP/1.0 without Host', 'GET /malla/v1/tables HTTP/1.0\r\n\r\n'],
    ['pipelined', 'GET /malla/v1/info HTTP/1.1\r\nHost: x\r\n\r\nPOST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['NUL in a header', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\u0000b\r\n\r\n'],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : x\r\nConnection: close\r\n\r\n'],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['Expect: 100-continue', 'POST /cgi-bin/shared-state/fuzz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}'],
    ['WebSocket upgrade, bad key', 'GET /malla/v1/push HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x\r\n\r\n'],
    ['WebSocket upgrade elsewhere', 'GET /malla/v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'],
  ])
  return { kind: 'raw', what, bytes: Buffer.from(text), closeAfterMs }
}

function frameCase(g: Gen, env: Env): FrameCase {
  const r = g.r
  const id = () => (r.chance(0.9) ? env.nextId++ : Number.MAX_SAFE_INTEGER - env.nextId++)
  // A frame nested deeper than the daemon parses is refused unread: it has no id the daemon could answer with.
  const frame = (what: string, value: Record<string, unknown>, frameId: number | null, expect: Expect): FrameCase => {
    const data = g.text(value)
    return { kind: 'frame', what, data, binary: false, id: nestsDeeperThan(data, MAX_TEXT_DEPTH) ? null : frameId, expect }
  }
  return r.weighted<() => FrameCase>([
    [12, () => {
      const n = id()
      return frame('valid push', { id: n, type: g.type(), entries: g.obj(g.pairs('ttl', 10)) }, n, 'ok')
    }],
    [2, () => {
      const n = id()
      return frame('empty push ([])', { id: n, type: g.type(), entries: [] }, n, 'ok')
    }],
    [5, () => {
      const n = id()
      const bad = g.badEntry('ttl')
      return frame(`push with a bad entry: ${bad.why}`, { id: n, type: r.chance(0.3) ? REFUSED : g.type(), entries: g.obj([[g.key(), bad.entry]]) }, n, 'error')
    }],
    [3, () => {
      const n = id()
      const [why, value] = r.pick<[string, Record<string, unknown>]>([
        ['bad type', { id: n, type: r.pick(['../x', '', 'x'.repeat(201), 5]), entries: {} }],
        ['no type', { id: n, entries: {} }],
        ['entries a string', { id: n, type: REFUSED, entries: 'none' }],
        ['no entries', { id: n, type: REFUSED }],
        ['entries nested deep', { id: n, type: REFUSED, entries: g.raw(deep(r.range(100, 20_000))) }],
        ['key of 5000 characters', { id: n, type: REFUSED, entries: g.obj([['k'.repeat(5000), g.ttlEntry()]]) }],
      ])
      return frame(why, value, n, 'error')
    }],
    // Frames the daemon cannot take an id from: each counts towards closing the socket (after 10).
    [3, () => frame('no id', { type: 'fuzz', entries: {} }, null, 'error')],
    [3, () => frame('unusable id', { id: r.pick<unknown>([-1, 1.5, '1', null, 2 ** 53, 1e300, g.raw('1e309'), g.raw('123456789012345678901234567890'), [1], {}]), type: 'fuzz', entries: {} }, null, 'error')],
    [2, () => ({ kind: 'frame', what: 'binary frame', data: r.bytes(r.range(0, 500)), binary: true, id: null, expect: 'error' })],
    // ws checks text frames are UTF-8 and closes the socket (1007) when not; the client lets us send one anyway.
    [1, () => ({ kind: 'frame', what: 'text frame of invalid UTF-8', data: Buffer.concat([Buffer.from('{"id":1,"type":"fuzz","entries":{"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('":1}}')]), binary: false, id: null, expect: 'error' })],
    [3, () => ({ kind: 'frame', what: 'garbage', data: r.pick(['garbage', '', '{', '[]', 'null', '1', deep(r.range(1000, 50_000)), '\ud800', g.str()]), binary: false, id: null, expect: 'error' })],
    [1, () => ({ kind: 'frame', what: 'frame over 1 MiB', data: `{"id":1,"type":"fuzz","entries":{"k":"${'x'.repeat(1100 * 1024)}"}}`, binary: false, id: null, expect: 'error' })],
  ])()
}

const STUN_COOKIE = 0x2112a442

function stunHeader(type: number, length: number, transaction: Buffer, cookie = STUN_COOKIE): Buffer {
  const b = Buffer.alloc(20)
  b.writeUInt16BE(type, 0)
  b.writeUInt16BE(length, 2)
  b.writeUInt32BE(cookie >>> 0, 4)
  transaction.copy(b, 8)
  return b
}

function datagramCase(g: Gen): DatagramCase {
  const r = g.r
  const transaction = () => r.bytes(12)
  return r.weighted<() => DatagramCase>([
    [4, () => {
      const tx = transaction()
      return { kind: 'datagram', what: 'Binding request', data: stunHeader(0x0001, 0, tx), transaction: tx }
    }],
    [4, () => ({ kind: 'datagram', what: 'random bytes', data: r.bytes(r.int(2001)) })],
    [3, () => {
      // A valid request with one byte changed or cut: mostly refused, sometimes still valid (then answered).
      const b = Buffer.concat([stunHeader(0x0001, 8, transaction()), Buffer.from([0x80, 0x22, 0x00, 0x04, 1, 2, 3, 4])])
      if (r.chance(0.5)) b[r.int(b.length)] = r.int(256)
      return { kind: 'datagram', what: 'mutated Binding request', data: r.chance(0.3) ? b.subarray(0, r.int(b.length)) : b }
    }],
    [2, () => {
      const [what, data] = r.pick<[string, Buffer]>([
        ['Binding request without cookie', stunHeader(0x0001, 0, transaction(), 0x12345678)],
        ['length field too long', stunHeader(0x0001, 400, transaction())],
        ['Binding indication', stunHeader(0x0011, 0, transaction())],
        ['Binding success response', stunHeader(0x0101, 0, transaction())],
        ['Allocate request', stunHeader(0x0003, 0, transaction())],
        ['Binding request over 1280 bytes', Buffer.concat([stunHeader(0x0001, 1500, transaction()), Buffer.alloc(1500)])],
        ['attribute longer than the message', Buffer.concat([stunHeader(0x0001, 8, transaction()), Buffer.from([0x80, 0x22, 0x01, 0x00, 1, 2, 3, 4])])],
      ])
      return { kind: 'datagram', what, data }
    }],
  ])()
}

// ---------------------------------------------------------------------------------------------------------
// Clients.

interface Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
}

/** Keep-alive sockets are dropped before the daemon's 5 s keep-alive timeout could close one under a request. */
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2, timeout: 4000 })

/** One HTTP request with node:http (the path goes out exactly as written: no normalisation of `..`). */
function sendHttp(port: number, c: HttpCase, fresh = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...c.headers }
    if (c.body !== undefined) {
      if (c.chunked) headers['transfer-encoding'] = 'chunked'
      else headers['content-length'] = String(c.body.length)
    }
    const req = request({
      host: '127.0.0.1',
      port,
      method: c.method,
      path: c.path,
      headers,
      localAddress: c.localAddress,
      // Another source address needs a socket of its own.
      agent: c.localAddress !== undefined || fresh ? false : agent,
    })
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS)
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = []
      res.on('data', (d: Buffer) => chunks.push(d))
      res.on('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
      })
      res.on('error', (e) => (clearTimeout(timer), reject(e)))
    })
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      // A keep-alive socket the server closed just as this request went out: the usual retry, on a new socket.
      if (!fresh && req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) sendHttp(port, c, true).then(resolve, reject)
      else reject(e)
    })
    if (c.body !== undefined && c.chunked) {
      for (let at = 0; at < c.body.length; at += 1024) req.write(c.body.subarray(at, at + 1024))
      req.end()
    } else req.end(c.body)
  })
}

/** Bytes on a plain TCP socket; what came back until the daemon closed it, or until `waitMs`. */
async function sendRaw(port: number, c: RawCase, waitMs = 300): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  socket.on('error', () => {}) // a reset is an answer too: the daemon closed on garbage
  await once(socket, 'connect')
  socket.write(c.bytes)
  const closed = once(socket, 'close')
  await Promise.race([closed, sleep(c.closeAfterMs ?? waitMs)])
  socket.destroy()
  return Buffer.concat(chunks).toString('latin1')
}

/**
 * Opens the change feed, reads for a moment and goes away, as a closed tab does. `silent`: no answer within
 * 400 ms, which is fair for a client resuming from the latest cursor (nothing to send, so no bytes yet).
 */
function readFeed(port: number, c: FeedCase): Promise<{ outcome: 'events' | 'silent' | 'refused'; problem?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: c.path, headers: c.headers, agent: false })
    const timer = setTimeout(() => (req.destroy(), resolve({ outcome: 'silent' })), 400)
    req.on('error', () => {})
    req.on('response', (res) => {
      let text = ''
      res.on('data', (b: Buffer) => (text += b.toString('utf8')))
      res.on('error', () => {})
      if (res.statusCode !== 200) return void res.on('end', () => (clearTimeout(timer), resolve({ outcome: 'refused', problem: `status ${res.statusCode}: ${text.slice(0, 300)}` })))
      if (!/^text\/event-stream/.test(res.headers['content-type'] ?? '')) resolve({ outcome: 'events', problem: `content-type ${res.headers['content-type']}` })
      setTimeout(() => {
        clearTimeout(timer)
        req.destroy()
        // Every complete event is a known kind, and its data is JSON.
        for (const block of text.split('\n\n').slice(0, -1)) {
          if (block.startsWith(':')) continue // keep-alive
          // Split on LF only: data may hold U+2028, which SSE leaves alone but a regex `.` does not match.
          const lines = block.split('\n')
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7)
          const data = lines.find((l) => l.startsWith('data: '))?.slice(6)
          if (!['hello', 'reset', 'change'].includes(event ?? '')) return resolve({ outcome: 'events', problem: `unknown event: ${block.slice(0, 300)}` })
          try {
            JSON.parse(data ?? '')
          } catch {
            return resolve({ outcome: 'events', problem: `event data is not JSON: ${block.slice(0, 300)}` })
          }
        }
        resolve({ outcome: 'events' })
      }, c.readMs)
    })
    req.end()
  })
}

/** A push socket whose replies are matched to the frames sent, by id (or in order, for frames without one). */
class PushClient {
  readonly ws: WebSocket
  readonly opened: Promise<void>
  closeCode: number | undefined
  private readonly byId = new Map<number, (reply: Record<string, unknown>) => void>()
  private readonly noId: Array<(reply: Record<string, unknown>) => void> = []
  private readonly onClose = new Set<(code: number) => void>()
  /** Replies that were not JSON objects with an id, or matched no frame. */
  readonly strays: string[] = []

  constructor(url: string) {
    this.ws = new WebSocket(url, { maxPayload: 64 * 1024 * 1024 })
    this.ws.on('error', () => {}) // the close that follows says enough
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('close', () => reject(new Error('push socket closed before it opened')))
    })
    this.opened.catch(() => {})
    this.ws.on('message', (data) => {
      let reply: Record<string, unknown>
      try {
        reply = JSON.parse(data.toString()) as Record<string, unknown>
      } catch {
        this.strays.push(data.toString().slice(0, 300))
        return
      }
      const id = reply?.id
      const waiter = typeof id === 'number' ? this.byId.get(id) : id === null ? this.noId.shift() : undefined
      if (waiter === undefined) return void this.strays.push(JSON.stringify(reply).slice(0, 300))
      if (typeof id === 'number') this.byId.delete(id)
      waiter(reply)
    })
    this.ws.on('close', (code) => {
      this.closeCode = code
      for (const f of this.onClose) f(code)
    })
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN
  }

  /** Sends a frame and resolves with its reply, or with the close code if the socket closes first. */
  send(c: FrameCase): Promise<{ reply: Record<string, unknown> } | { closed: number }> {
    // Closed by an earlier frame of another operation (10 without an id, one too large): nothing to send on.
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve({ closed: this.closeCode ?? 1006 })
    return new Promise((resolve, reject) => {
      const done = (x: { reply: Record<string, unknown> } | { closed: number }) => {
        clearTimeout(timer)
        this.onClose.delete(closed)
        resolve(x)
      }
      const closed = (code: number) => done({ closed: code })
      const timer = setTimeout(() => {
        this.onClose.delete(closed)
        reject(new Error(`no reply within ${ANSWER_TIMEOUT_MS} ms`))
      }, ANSWER_TIMEOUT_MS)
      this.onClose.add(closed)
      if (c.id === null) this.noId.push((reply) => done({ reply }))
      else this.byId.set(c.id, (reply) => done({ reply }))
      // A send that fails is followed by the close event, which settles this; unless the socket closed just before.
      this.ws.send(c.data, { binary: c.binary }, (e) => e && this.closeCode !== undefined && closed(this.closeCode))
    })
  }
}

/** One UDP socket; answers are matched to Binding requests by transaction ID. */
class StunClient {
  readonly socket: UdpSocket = createSocket('udp4')
  private readonly waiting = new Map<string, (answer: Buffer) => void>()
  /** Transaction IDs of every datagram sent: a mutated request may still be valid, and its answer is no stray. */
  private readonly sent = new Set<string>()
  /** Answers that match no request sent, or are not Binding success answers. */
  readonly strays: string[] = []
  answers = 0

  async bind(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve))
    this.socket.on('message', (m) => {
      this.answers++
      const tx = m.length >= 20 ? m.subarray(8, 20).toString('hex') : ''
      const w = this.waiting.get(tx)
      if (w) {
        this.waiting.delete(tx)
        w(m)
      } else if (!this.sent.has(tx) || m.readUInt16BE(0) !== 0x0101) this.strays.push(m.toString('hex').slice(0, 200))
    })
  }

  get port(): number {
    return this.socket.address().port
  }

  send(data: Buffer, port: number): Promise<void> {
    if (data.length >= 20) this.sent.add(data.subarray(8, 20).toString('hex'))
    return new Promise((resolve, reject) => this.socket.send(data, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())))
  }

  /** The answer to the Binding request with this transaction ID, or undefined after `timeoutMs`. */
  answer(transaction: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const key = transaction.toString('hex')
      const timer = setTimeout(() => (this.waiting.delete(key), resolve(undefined)), timeoutMs)
      this.waiting.set(key, (m) => (clearTimeout(timer), resolve(m)))
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()))
  }
}

// ---------------------------------------------------------------------------------------------------------
// Checks.

const STATUS_OF_CODE: Record<string, number[]> = { BAD_INPUT: [400, 405], NOT_FOUND: [404], TOO_LARGE: [413], BUSY: [429], FORBIDDEN: [403] }
/** Answers the daemon may give this machine: anything else (a 403 from loopback, a 5xx) is a fault. */
const ALLOWED_STATUS = new Set([200, 304, 400, 404, 405, 413, 429])

function describe(c: Case): string {
  const show = (b: Buffer | string | undefined) => {
    if (b === undefined) return 'no body'
    const buf = Buffer.from(b)
    const text = buf.toString('utf8')
    const printable = Buffer.from(text).equals(buf)
    const head = printable ? JSON.stringify(text.slice(0, 240)) : `hex ${buf.subarray(0, 120).toString('hex')}`
    return `${buf.length} bytes: ${head}${buf.length > 240 ? '…' : ''}`
  }
  switch (c.kind) {
    case 'http':
      return `${c.what}: ${c.method} ${c.path.slice(0, 200)}${c.localAddress ? ` from ${c.localAddress}` : ''} ${JSON.stringify(c.headers)}${c.chunked ? ' chunked' : ''}, ${show(c.body)}`
    case 'feed':
      return `${c.what}: GET ${c.path.slice(0, 200)} ${JSON.stringify(c.headers).slice(0, 200)}`
    case 'raw':
      return `raw ${c.what}: ${show(c.bytes)}`
    case 'frame':
      return `push frame ${c.what}${c.binary ? ' (binary)' : ''}, ${show(c.data)}`
    case 'datagram':
      return `STUN ${c.what}: ${c.data.length} bytes ${c.data.subarray(0, 40).toString('hex')}`
  }
}

/** What is wrong with an HTTP answer to `c`, if anything. */
function httpFault(c: HttpCase, a: Answer): string | undefined {
  if (a.status >= 500) return `answered ${a.status}: ${a.body.toString('utf8').slice(0, 500)}`
  if (!ALLOWED_STATUS.has(a.status)) return `unexpected status ${a.status}: ${a.body.toString('utf8').slice(0, 300)}`
  if (a.status >= 400) {
    if (c.method !== 'HEAD') {
      let error: { code?: unknown; message?: unknown } | undefined
      try {
        error = (JSON.parse(a.body.toString('utf8')) as { error?: { code?: unknown; message?: unknown } }).error
      } catch {
        return `error answer ${a.status} is not JSON: ${JSON.stringify(a.body.toString('utf8').slice(0, 300))}`
      }
      if (typeof error?.code !== 'string' || typeof error.message !== 'string') return `error answer ${a.status} lacks {"error":{"code","message"}}: ${a.body.toString('utf8').slice(0, 300)}`
      if (!STATUS_OF_CODE[error.code]?.includes(a.status)) return `status ${a.status} with code ${error.code}`
    }
    if (a.status === 429 && c.busyOk) return undefined
    if (c.expect === 'ok') return `valid request refused with ${a.status}: ${a.body.toString('utf8').slice(0, 300)}`
    return undefined
  }
  if (c.expect === 'error') return `invalid request accepted with ${a.status}: ${a.body.toString('utf8').slice(0, 300)}`
  if (a.status !== 200 || c.answer === undefined || c.answer === 'text') return undefined
  // A 200 answer must be well formed, and any table in it valid: the daemon never hands out what it would refuse.
  let body = a.body
  // The daemon gzips its answer whenever the query string contains "gzip", as LibreMesh's CGI does.
  if (c.path.startsWith('/cgi-bin/') && (c.path.split('?')[1] ?? '').includes('gzip')) {
    try {
      body = gunzipSync(body)
    } catch (e) {
      return `200 answer to ?gzip is not gzip (${(e as Error).message}): ${body.toString('hex').slice(0, 100)}`
    }
  }
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    return `200 answer is not JSON: ${body.toString('utf8').slice(0, 300)}`
  }
  try {
    switch (c.answer) {
      case 'ttl-table':
        parseTable(value, 'answer')
        break
      case 'mw-table':
        parseMultiWriterTable(value, 'answer')
        break
      case 'reconcile-1':
        assert.equal((value as { v?: unknown }).v, 1)
        assert.equal(typeof (value as { buckets?: unknown }).buckets, 'object')
        break
      case 'reconcile-2': {
        const flavour = /"flavour":"multiwriter"/.test(c.body?.toString('utf8') ?? '') ? 'multiwriter' : 'ttl'
        const entries = (value as { entries?: unknown }).entries
        if (flavour === 'ttl') parseTable(entries, 'answer entries')
        else parseMultiWriterTable(entries, 'answer entries')
        break
      }
      case 'outcomes':
        assert.ok(Array.isArray(value) && value.every((o: { url?: unknown }) => typeof o.url === 'string'), 'an array of outcomes')
        break
      case 'info':
        assert.equal((value as { name?: unknown }).name, 'F')
        break
    }
  } catch (e) {
    return `200 answer is malformed (${(e as Error).message.slice(0, 300)}): ${body.toString('utf8').slice(0, 300)}`
  }
  return undefined
}

/** A push frame's reply must be `{"id", "entries"}` or `{"id", "error": {"code", "message"}}` with a 4xx-class code. */
function frameFault(c: FrameCase, reply: Record<string, unknown>): string | undefined {
  if (reply.id !== c.id) return `reply with id ${JSON.stringify(reply.id)} for id ${c.id}`
  const error = reply.error as { code?: unknown; message?: unknown } | undefined
  if (error !== undefined) {
    if (typeof error.code !== 'string' || typeof error.message !== 'string') return `error reply lacks code and message: ${JSON.stringify(reply).slice(0, 300)}`
    if (!['BAD_INPUT', 'TOO_LARGE', 'BUSY'].includes(error.code)) return `error reply with code ${error.code}: ${JSON.stringify(reply).slice(0, 500)}`
    if (c.expect === 'ok') return `valid frame refused: ${JSON.stringify(reply).slice(0, 300)}`
    return undefined
  }
  if (c.expect === 'error') return `invalid frame accepted: ${JSON.stringify(reply).slice(0, 300)}`
  try {
    parseTable(reply.entries, 'reply entries')
  } catch (e) {
    return `reply entries malformed: ${(e as Error).message.slice(0, 300)}`
  }
  return undefined
}

/** Every status line in what a raw socket got back. */
const statusesIn = (text: string) => [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))

/** Why a stored entry is not what a daemon may keep, beyond what the strict schema checks. */
function storedEntryFault(flavour: Flavour, entry: Record<string, unknown>): string | undefined {
  if (typeof entry.author !== 'string') return 'author is not a string'
  if (flavour === 'ttl') {
    if (!Number.isInteger(entry.bleachTTL)) return 'bleachTTL is not an integer'
    if (entry.clock !== undefined && !(typeof entry.clock === 'string' && /^(0|[1-9][0-9]*)$/.test(entry.clock) && Number(entry.clock) < Number.MAX_SAFE_INTEGER)) return `bad clock ${JSON.stringify(entry.clock)}`
  }
  // Depth of the data (a scalar is 0), and its numbers, without recursion.
  const stack: Array<[unknown, number]> = [[entry.data, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number]
    if (typeof v === 'number' && !Number.isFinite(v)) return 'a number that is not finite'
    if (v !== null && typeof v === 'object') {
      if (d + 1 > 30) return 'data nested deeper than 30 levels'
      for (const x of Object.values(v)) stack.push([x, d + 1])
    }
  }
  return undefined
}

/**
 * Every table file of a data directory with its journal applied (the records whose header names the
 * file as it is now, as the daemon reads them), checked strictly. Returns the problems found.
 */
async function checkStoredTables(dir: string): Promise<{ faults: string[]; tables: number; entries: number; journals: number }> {
  const faults: string[] = []
  let tables = 0
  let entries = 0
  let journals = 0
  for (const [sub, flavour] of [['', 'ttl'], ['multiwriter', 'multiwriter']] as const) {
    const where = join(dir, sub)
    const names = await readdir(where).catch(() => [] as string[])
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = join(where, name)
      tables++
      let table: Record<string, unknown>
      try {
        table = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
        if (Array.isArray(table) && table.length === 0) table = {}
        const journal = await readFile(`${path}.journal`, 'utf8').catch(() => undefined)
        if (journal !== undefined) {
          journals++
          const st = await stat(path, { bigint: true })
          const lines = journal.split('\n')
          lines.pop() // an append cut short, or the empty rest after the last newline
          if (lines[0] === JSON.stringify({ base: `${st.ino}:${st.size}` })) {
            for (const line of lines.slice(1)) {
              const record = JSON.parse(line) as { set?: Record<string, unknown>; del?: string[] }
              for (const k of Object.keys(record.set ?? {})) Object.defineProperty(table, k, { value: record.set?.[k], enumerable: true, writable: true, configurable: true })
              for (const k of record.del ?? []) delete table[k]
            }
          }
        }
        const parsed = flavour === 'ttl' ? parseTable(table, path) : parseMultiWriterTable(table, path)
        entries += parsed.size
        for (const k of Object.keys(table)) {
          const fault = storedEntryFault(flavour, table[k] as Record<string, unknown>)
          if (fault) faults.push(`${path}: entry ${JSON.stringify(k.slice(0, 80))}: ${fault}`)
        }
      } catch (e) {
        faults.push(`${path}: ${(e as Error).message.slice(0, 500)}`)
      }
    }
    for (const name of names.filter((n) => /\.(unreadable|corrupt)-/.test(n))) faults.push(`${join(where, name)}: set aside as unreadable`)
  }
  return { faults, tables, entries, journals }
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1])
}

async function getJson(d: RunningDaemon, path: string): Promise<unknown> {
  const res = await fetch(`${d.base}${path}`, { signal: AbortSignal.timeout(5000) })
  assert.equal(res.status, 200, path)
  return res.json()
}

/** The first event a fresh feed client gets: `hello`, with the current cursor. */
async function feedCursor(d: RunningDaemon): Promise<string> {
  const controller = new AbortController()
  const res = await fetch(`${d.base}/malla/v1/events`, { signal: controller.signal })
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  let text = ''
  const deadline = Date.now() + 5000
  while (!/\n\n/.test(text) && Date.now() < deadline) {
    const { value, done } = await reader.read()
    if (done) break
    text += Buffer.from(value).toString('utf8')
  }
  controller.abort()
  const cursor = /"cursor":"([^"]+)"/.exec(text)?.[1]
  assert.ok(cursor, `a hello event with a cursor: ${text}`)
  return cursor
}

// ---------------------------------------------------------------------------------------------------------

test(`fuzz: ${OPS} generated requests, frames and datagrams leave the daemon up, answering 4xx JSON errors and storing only valid tables (MALLA_FUZZ_SEED=${SEED})`, { timeout: FUZZ_BUDGET_MS + 60_000 }, async (t) => {
  t.diagnostic(`seed ${SEED}: replay with MALLA_FUZZ_SEED=${SEED}`)
  const dir = await tempDir(t, 'malla-fuzz-')
  const d = await startDaemon(t, ['--data', dir, '--name', 'F'])
  const port = Number(new URL(d.url).port)
  const pid = d.child.pid as number
  const stunPort = ((await getJson(d, '/malla/v1/info')) as { stun: { port: number } }).stun.port

  const env: Env = { cursor: await feedCursor(d), signed: await signedPeople(), deadPorts: await Promise.all([freePort(), freePort(), freePort()]), nextId: 0 }
  const stun = new StunClient()
  await stun.bind()
  const pushers: PushClient[] = []
  t.after(async () => {
    for (const p of pushers) p.ws.terminate()
    agent.destroy()
    await stun.close()
  })

  const faults: string[] = []
  const fault = (i: number, c: Case, what: string): void => void faults.push(`#${i} ${describe(c)}\n    → ${what}`)
  const counts = new Map<string, number>()
  const statuses = new Map<string, number>()
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)
  /** Time spent per kind of operation, and the slowest one (a near-hang shows here first). */
  const spent = new Map<string, number>()
  let slowest = { ms: 0, what: '' }
  /** The operations in flight, for the message when the daemon dies. */
  const inFlight = new Map<number, Case>()
  let exited: string | undefined
  d.child.once('exit', (code, signal) => {
    const ops = [...inFlight].map(([i, c]) => `  #${i} ${describe(c)}`).join('\n')
    exited = `daemon exited (code ${code}, signal ${signal}) with these operations in flight:\n${ops}`
  })
  let stunSent = 0
  let stunWanted = 0

  const pusher = async (i: number): Promise<PushClient> => {
    const slot = i % 3
    let p = pushers[slot]
    if (p === undefined || p.ws.readyState === WebSocket.CLOSING || p.ws.readyState === WebSocket.CLOSED) {
      p = new PushClient(`ws://127.0.0.1:${port}/malla/v1/push`)
      pushers[slot] = p
    }
    await p.opened
    return p
  }

  const run = async (i: number): Promise<void> => {
    const c = generate(i, env)
    count(counts, c.kind)
    inFlight.set(i, c)
    const began = Date.now()
    try {
      switch (c.kind) {
        case 'http': {
          let a: Answer
          try {
            a = await sendHttp(port, c)
          } catch (e) {
            const err = e as NodeJS.ErrnoException
            // A body over the limit may be cut off by the daemon's close while it is still going out.
            const oversize = (c.body?.length ?? 0) > 1024 * 1024
            if (oversize && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return void count(statuses, 'http reset (oversize)')
            return fault(i, c, `no answer: ${err.code ?? ''} ${err.message}`)
          }
          count(statuses, `http ${a.status}`)
          const problem = httpFault(c, a)
          if (problem) fault(i, c, problem)
          return
        }
        case 'feed': {
          const { outcome, problem } = await readFeed(port, c)
          count(statuses, `feed ${outcome}`)
          if (problem) fault(i, c, problem)
          return
        }
        case 'raw': {
          // Node's own parser answers most of these (400, 431) with no body, before any route: only statuses count.
          const text = await sendRaw(port, c)
          const codes = statusesIn(text)
          count(statuses, `raw ${codes.join(',') || 'closed'}`)
          if (codes.some((s) => s >= 500)) fault(i, c, `answered ${codes.join(', ')}: ${text.slice(0, 500)}`)
          return
        }
        case 'frame': {
          const p = await pusher(i).catch(() => undefined)
          if (p === undefined) return fault(i, c, 'the push socket did not open')
          let result: Awaited<ReturnType<PushClient['send']>>
          try {
            result = await p.send(c)
          } catch (e) {
            return fault(i, c, (e as Error).message)
          }
          if ('closed' in result) {
            // Ours to cause: 1007 for a text frame that is not UTF-8, 1008 after 10 frames without an id, 1009 for a frame over the limit.
            count(statuses, `frame closed ${result.closed}`)
            if (![1007, 1008, 1009].includes(result.closed)) fault(i, c, `push socket closed with ${result.closed}`)
            return
          }
          count(statuses, `frame ${result.reply.error ? (result.reply.error as { code: string }).code : 'ok'}`)
          const problem = frameFault(c, result.reply)
          if (problem) fault(i, c, problem)
          return
        }
        case 'datagram': {
          stunSent++
          const answered = c.transaction ? stun.answer(c.transaction, 5000) : undefined
          await stun.send(c.data, stunPort)
          if (answered) {
            stunWanted++
            const m = await answered
            if (m === undefined) return fault(i, c, 'no STUN answer within 5 s')
            if (m.readUInt16BE(0) !== 0x0101 || m.readUInt32BE(4) !== STUN_COOKIE || m.length !== 32) fault(i, c, `not a Binding success answer: ${m.toString('hex')}`)
            // XOR-MAPPED-ADDRESS: our port, XORed with the cookie's top half.
            else if ((m.readUInt16BE(26) ^ (STUN_COOKIE >>> 16)) !== stun.port) fault(i, c, `answer names port ${m.readUInt16BE(26) ^ (STUN_COOKIE >>> 16)}, not ${stun.port}`)
          }
          return
        }
      }
    } finally {
      inFlight.delete(i)
      const ms = Date.now() - began
      spent.set(c.kind, (spent.get(c.kind) ?? 0) + ms)
      if (ms > slowest.ms) slowest = { ms, what: `#${i} ${describe(c).slice(0, 200)}` }
    }
  }

  /** Runs operations `from` to `to` (excluded), CONCURRENCY at a time, until the deadline or the daemon's death. */
  const runOps = async (from: number, to: number, deadline: number): Promise<number> => {
    let next = from
    const worker = async () => {
      while (next < to && Date.now() < deadline && exited === undefined) await run(next++)
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    return next - from
  }
  const dead = () => `${exited}\nlog tail:\n${d.log.slice(-30).join('\n')}`

  const started = Date.now()
  const deadline = started + FUZZ_BUDGET_MS
  // Warm-up: the same stream of operations, so that code paths are compiled and tables exist before measuring.
  let done = await runOps(0, Math.min(WARM_UP_OPS, OPS), deadline)
  await sleep(1000)
  assert.equal(exited, undefined, dead())
  const rssStart = await rssKiB(pid)
  done += await runOps(done, OPS, deadline)
  const fuzzMs = Date.now() - started
  assert.equal(exited, undefined, dead())

  // The signed tables hold only what their rules admit, and something of each (the fuzz made valid records too).
  const signed = await signedTableFaults(d)
  t.diagnostic(`signed tables kept: ${Object.entries(signed.kept).map(([k, n]) => `${k} ${n}`).join(', ')}`)
  assert.deepEqual(signed.faults.slice(0, 10), [], `${signed.faults.length} entries of signed tables that the rules refuse`)
  if (done >= 1000) for (const [table, n] of Object.entries(signed.kept)) assert.ok(n > 0, `some valid ${table} records were kept`)

  // The files as they are now, journals included (a compaction racing this read leaves a valid older table).
  const live = await checkStoredTables(dir)
  assert.deepEqual(live.faults, [], 'every stored table parses and every entry is valid, with its journal applied')

  // Quiet: journals compact (1 s), closed sockets and feed clients go, the heap settles.
  await sleep(3000)
  const rssEnd = await rssKiB(pid)
  const stunInfo = ((await getJson(d, '/malla/v1/info')) as { stun: { answered: number; ignored: number } }).stun

  const summary = [
    `seed ${SEED}: ${done} operations in ${fuzzMs} ms (${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')})`,
    `time per kind (sum over ${CONCURRENCY} workers): ${[...spent].map(([k, ms]) => `${k} ${ms} ms`).join(', ')}; slowest ${slowest.ms} ms: ${slowest.what}`,
    `answers: ${[...statuses].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`,
    `STUN: ${stunSent} datagrams sent, ${stunWanted} Binding requests, ${stun.answers} answers; daemon counts answered ${stunInfo.answered}, ignored ${stunInfo.ignored}`,
    `RSS: ${(rssStart / 1024).toFixed(1)} MiB after the warm-up, ${(rssEnd / 1024).toFixed(1)} MiB after fuzzing and 3 s quiet (+${((rssEnd - rssStart) / 1024).toFixed(1)} MiB)`,
  ]
  // Not a failure by itself (a client that hangs up mid-body is logged as an error), but worth seeing.
  const errors = d.log.filter((l) => / error \[/.test(l))
  summary.push(`daemon log: ${d.log.length} lines, ${errors.length} at level error${errors.length > 0 ? `, e.g. ${[...new Set(errors.map((l) => l.replace(/^\S+ /, '').slice(0, 160)))].slice(0, 3).join(' | ')}` : ''}`)
  for (const line of summary) t.diagnostic(line)

  assert.ok(done >= Math.min(OPS, 1000), `at least 1000 operations ran before the deadline (${done})`)
  assert.ok((statuses.get('feed events') ?? 0) > 0 || done < 500, 'some feed clients were sent events')
  assert.deepEqual(faults.slice(0, 30), [], `${faults.length} faults (seed ${SEED}); the first ones:\n${faults.slice(0, 30).join('\n')}\nlog tail:\n${d.log.slice(-20).join('\n')}`)
  const strays = [...pushers.flatMap((p) => p.strays), ...stun.strays]
  assert.deepEqual(strays, [], 'every push reply and STUN answer matched a frame or request sent')
  // Every datagram was either answered or counted as ignored (none lost on loopback; nothing decoded twice).
  assert.equal(stunInfo.answered + stunInfo.ignored, stunSent, 'the responder accounted for every datagram')
  assert.ok(stunInfo.answered >= stunWanted, 'every Binding request was answered')
  assert.ok(rssEnd < rssStart + RSS_GROWTH_BOUND_KIB, `RSS grew from ${rssStart} KiB to ${rssEnd} KiB, more than ${RSS_GROWTH_BOUND_KIB} KiB`)

  // Refused writes changed nothing: the table that only ever got invalid ones is empty in both flavours.
  assert.deepEqual(await getJson(d, `/malla/v1/tables/${REFUSED}`), {}, 'invalid writes stored nothing')
  assert.deepEqual(await getJson(d, `/malla/v1/multiwriter/${REFUSED}`), {}, 'invalid writes stored nothing')

  // Still an ordinary daemon: an insert is answered with its entry, and a get returns it.
  const insert = await fetch(`${d.base}/malla/v1/tables/fuzz-final/insert`, { method: 'POST', body: '{"k":{"v":[1,"ñ"]}}', signal: AbortSignal.timeout(5000) })
  assert.equal(insert.status, 200)
  const inserted = (await insert.json()) as Record<string, { data: unknown; author: string }>
  assert.deepEqual([inserted.k?.data, inserted.k?.author], [{ v: [1, 'ñ'] }, 'F'])
  const got = (await getJson(d, '/malla/v1/tables/fuzz-final')) as Record<string, { data: unknown }>
  assert.deepEqual(got.k?.data, { v: [1, 'ñ'] })
  assert.equal(exited, undefined, dead())

  // Stopped with SIGTERM, the daemon folds journals into the files; then every stored entry must be valid.
  await d.stop('SIGTERM')
  assert.equal(d.child.exitCode, 0, `clean exit; log tail:\n${d.log.slice(-20).join('\n')}`)
  const stored = await checkStoredTables(dir)
  t.diagnostic(`stored: ${stored.tables} tables, ${stored.entries} entries (${live.journals} journals live right after fuzzing)`)
  assert.deepEqual(stored.faults, [], 'every stored table parses and every entry is valid')
  assert.ok(stored.entries > 0, 'the fuzz wrote something')
  assert.equal(stored.journals, 0, 'shutdown folded every journal into its table file')

  // A restart reads everything back: nothing is set aside, and the last write is there.
  const again = await startDaemon(t, ['--data', dir, '--name', 'F'])
  await sleep(300)
  const unreadable = again.log.filter((l) => /unreadable|corrupt/.test(l))
  assert.deepEqual(unreadable, [], 'nothing stored was unreadable')
  assert.deepEqual(((await getJson(again, '/malla/v1/tables/fuzz-final')) as Record<string, { data: unknown }>).k?.data, { v: [1, 'ñ'] })
  await again.stop('SIGTERM')
})
