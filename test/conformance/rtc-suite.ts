import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { isMallaError, type ErrorCode } from '../../src/core/errors.js'
import type { RtcCloseReason, RtcFactory, RtcOptions, RtcPeer } from '../../src/rtc/rtc-peer.js'
import { compactSession, expandSession, sessionFacts, toSdp } from '../../src/signaling/sdp-codec.js'

/** What an adapter's test gives the suite: two factories that can reach each other, fresh per test. */
export interface RtcSuiteFixture {
  /** Makes the peers that offer in the forward direction (and answer in the reverse one). */
  readonly offerer: RtcFactory
  /** Makes the peers that answer in the forward direction; may be the same factory as `offerer`. */
  readonly answerer: RtcFactory
  /** How long one connection may take to open on this pair, from the offer; default 5000 ms. */
  readonly openWithinMs?: number
  /** How long a close may take to reach the other side; default 3000 ms. */
  readonly closeWithinMs?: number
  readonly teardown?: () => Promise<void>
}

/** Long enough for a duplicate or late event to show up; used only to show that something does *not* happen. */
const SETTLE_MS = 250

/** A peer with a record of everything it reported, and event-driven waits on that record. */
class Watched {
  opens = 0
  drains = 0
  readonly closes: { reason: RtcCloseReason; detail: string | undefined }[] = []
  readonly messages: (string | Uint8Array)[] = []
  /** Pending `until` waits, re-checked after every event. */
  readonly #wakers = new Set<() => void>()

  constructor(
    readonly peer: RtcPeer,
    readonly label: string,
  ) {
    peer.on('open', () => this.#note(() => this.opens++))
    peer.on('message', (m) => this.#note(() => this.messages.push(m)))
    peer.on('drain', () => this.#note(() => this.drains++))
    peer.on('close', (reason, detail) => this.#note(() => this.closes.push({ reason, detail })))
  }

  #note(record: () => void): void {
    record()
    for (const wake of [...this.#wakers]) wake()
  }

  /** Resolves once `done()` holds, checked after every event; fails with the peer's record after `ms`. */
  until(what: string, ms: number, done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const wake = () => {
        if (!done()) return
        this.#wakers.delete(wake)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#wakers.delete(wake)
        reject(new Error(`${this.label}: ${what} did not happen within ${ms} ms (${this.describe()})`))
      }, ms)
      this.#wakers.add(wake)
    })
  }

  async opened(ms: number): Promise<void> {
    await this.until('open', ms, () => this.opens > 0 || this.closes.length > 0)
    assert.equal(this.opens, 1, `${this.label} closed instead of opening (${this.describe()})`)
  }

  async closed(ms: number): Promise<{ reason: RtcCloseReason; detail: string | undefined }> {
    await this.until('close', ms, () => this.closes.length > 0)
    return this.closes[0] as { reason: RtcCloseReason; detail: string | undefined }
  }

  received(n: number, ms: number): Promise<void> {
    return this.until(`${n} messages`, ms, () => this.messages.length >= n)
  }

  describe(): string {
    return `state ${this.peer.state}, opens ${this.opens}, messages ${this.messages.length}, closes ${JSON.stringify(this.closes)}`
  }
}

type Side = 'offerer' | 'answerer'
const DIRECTIONS: readonly { readonly from: Side; readonly to: Side; readonly name: string }[] = [
  { from: 'offerer', to: 'answerer', name: 'forward' },
  { from: 'answerer', to: 'offerer', name: 'reverse' },
]

const bytes = (n: number, seed = 1): Uint8Array => {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24
  return out
}

function assertBytes(got: string | Uint8Array | undefined, want: Uint8Array, what: string): void {
  assert.ok(got instanceof Uint8Array, `${what}: expected binary, got ${typeof got}`)
  // A plain Uint8Array, so that deepEqual and structured clone treat it like any other.
  assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype, `${what}: not a plain Uint8Array`)
  assert.equal(got.byteLength, want.byteLength, `${what}: length`)
  assert.ok(
    got.every((b, i) => b === want[i]),
    `${what}: bytes differ`,
  )
}

async function rejectsWith(code: ErrorCode, promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isMallaError(e, code), `${what}: expected MallaError ${code}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
    return true
  })
}

function throwsWith(code: ErrorCode, fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isMallaError(e, code), `${what}: expected MallaError ${code}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
    return true
  })
}

/** The way offers and answers travel through shared-state: reduced to facts, as compact JSON, and rebuilt. */
function throughCodec(sdp: string, type: 'offer' | 'answer'): string {
  const wire = JSON.stringify(compactSession(sessionFacts(sdp)))
  return toSdp(expandSession(JSON.parse(wire)), type)
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2
}

/**
 * The behaviour every `RtcFactory` pair must have; each adapter's test file calls this with its own setup.
 * Waits are driven by the peers' events and bounded; fixed sleeps only show that a duplicate does not come.
 */
export function rtcSuite(name: string, setup: () => Promise<RtcSuiteFixture>): void {
  async function harness(t: TestContext) {
    const fixture = await setup()
    const made: Watched[] = []
    t.after(async () => {
      for (const w of made) w.peer.close()
      await fixture.teardown?.()
    })
    const openMs = fixture.openWithinMs ?? 5_000
    const closeMs = fixture.closeWithinMs ?? 3_000
    const make = (side: Side, options?: RtcOptions, label: string = side): Watched => {
      const w = new Watched(fixture[side](options), `${label} (${side} factory)`)
      made.push(w)
      return w
    }
    /** Offer, answer and open, optionally passing each description through `carry` on its way. */
    const connect = async (
      from: Side = 'offerer',
      to: Side = from === 'offerer' ? 'answerer' : 'offerer',
      { options, carry = (sdp: string) => sdp }: { options?: RtcOptions; carry?: (sdp: string, type: 'offer' | 'answer') => string } = {},
    ) => {
      const a = make(from, options, 'offering peer')
      const b = make(to, options, 'answering peer')
      const start = performance.now()
      const offer = await a.peer.createOffer()
      const answer = await b.peer.acceptOffer(carry(offer, 'offer'))
      const answered = performance.now()
      await a.peer.acceptAnswer(carry(answer, 'answer'))
      await Promise.all([a.opened(openMs), b.opened(openMs)])
      const end = performance.now()
      assert.equal(a.peer.state, 'open')
      assert.equal(b.peer.state, 'open')
      return { a, b, offer, answer, totalMs: end - start, afterAnswerMs: end - answered }
    }
    return { make, connect, openMs, closeMs }
  }

  /** One message each way, to show the channel carries data. */
  async function pingPong(a: Watched, b: Watched, ms: number): Promise<void> {
    a.peer.send('ping')
    await b.received(b.messages.length + 1, ms)
    assert.equal(b.messages.at(-1), 'ping')
    b.peer.send('pong')
    await a.received(a.messages.length + 1, ms)
    assert.equal(a.messages.at(-1), 'pong')
  }

  describe(`RtcPeer conformance: ${name}`, () => {
    describe('connecting', () => {
      it('opens in both directions, one open event per side, and carries data', { timeout: 60_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        for (const d of DIRECTIONS) {
          const totals: number[] = []
          const afterAnswer: number[] = []
          for (let run = 0; run < 5; run++) {
            const { a, b, totalMs, afterAnswerMs } = await connect(d.from, d.to)
            totals.push(totalMs)
            afterAnswer.push(afterAnswerMs)
            await pingPong(a, b, openMs)
            a.peer.close()
            b.peer.close()
            assert.deepEqual(a.closes.map((c) => c.reason), ['local'])
            assert.equal(a.opens, 1)
            assert.equal(b.opens, 1)
          }
          t.diagnostic(
            `${d.name}: open ${median(totals).toFixed(0)} ms median from createOffer ` +
              `(${median(afterAnswer).toFixed(0)} ms from the answer), runs ${totals.map((x) => x.toFixed(0)).join(' ')}`,
          )
        }
      })

      it('hands out complete descriptions: candidates, no trickle left to do', { timeout: 20_000 }, async (t) => {
        const { connect } = await harness(t)
        const { offer, answer } = await connect()
        for (const [type, sdp] of [['offer', offer], ['answer', answer]] as const) {
          assert.ok(sessionFacts(sdp).candidates.length > 0, `${type} has no candidate:\n${sdp}`)
        }
      })

      it('once open, each side names the certificate the other used: the fingerprint in the other\'s description', { timeout: 30_000 }, async (t) => {
        const { connect, make } = await harness(t)
        assert.equal(make('offerer', undefined, 'not connected').peer.remoteCertificateSha256(), undefined)
        for (const d of DIRECTIONS) {
          const { a, b, offer, answer } = await connect(d.from, d.to)
          assert.equal(a.peer.remoteCertificateSha256(), sessionFacts(answer).fingerprint)
          assert.equal(b.peer.remoteCertificateSha256(), sessionFacts(offer).fingerprint)
        }
      })

      it('connects through descriptions rebuilt from compact facts by sdp-codec, both ways', { timeout: 30_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        for (const d of DIRECTIONS) {
          const { a, b } = await connect(d.from, d.to, { carry: throughCodec })
          await pingPong(a, b, openMs)
        }
      })
    })

    describe('messages', () => {
      it('the sync channel carries its own messages both ways, apart from the app channel, and ends with the connection', { timeout: 20_000 }, async (t) => {
        const { connect, openMs, closeMs } = await harness(t)
        const { a, b } = await connect()
        const got: Record<string, Array<string | Uint8Array>> = { a: [], b: [] }
        const syncOpen = { a: a.peer.syncChannel.state, b: b.peer.syncChannel.state }
        assert.deepEqual(syncOpen, { a: 'open', b: 'open' }, 'the sync channel opens with the connection')
        a.peer.syncChannel.on('message', (m) => got.a?.push(m))
        b.peer.syncChannel.on('message', (m) => got.b?.push(m))
        const bClosed = new Promise<string>((resolve) => b.peer.syncChannel.on('close', (reason) => resolve(reason)))
        // Sent at once, before the app channel's message: each channel has its own order, and only its own messages.
        a.peer.syncChannel.send('sync 1')
        a.peer.syncChannel.send(bytes(1000, 3))
        a.peer.send('app 1')
        b.peer.syncChannel.send('sync back')
        await b.received(1, openMs)
        // The sync channel's messages are not among what Watched records: polled.
        for (const [side, n] of [['b', 2], ['a', 1]] as const) {
          const deadline = performance.now() + openMs
          while ((got[side]?.length ?? 0) < n && performance.now() < deadline) await sleep(5)
          assert.equal(got[side]?.length, n, `${side} got ${n} sync messages`)
        }
        assert.deepEqual(b.messages, ['app 1'], 'the app channel carried only its own message')
        assert.equal(got.b?.[0], 'sync 1')
        assertBytes(got.b?.[1], bytes(1000, 3), 'binary on the sync channel')
        assert.deepEqual(got.a, ['sync back'])
        throwsWith('BAD_INPUT', () => a.peer.syncChannel.send(''), 'an empty sync message')
        throwsWith('TOO_LARGE', () => a.peer.syncChannel.send(new Uint8Array(a.peer.syncChannel.maxMessageSize + 1)), 'an oversized sync message')
        a.peer.close()
        assert.equal(await Promise.race([bClosed, sleep(closeMs).then(() => 'no close')]), 'remote')
        assert.equal(b.peer.syncChannel.state, 'closed')
        throwsWith('PEER', () => b.peer.syncChannel.send('late'), 'a send after the end')
      })

      it('the file channel carries its own messages, and app messages overtake megabytes queued on it', { timeout: 60_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        const { a, b } = await connect()
        assert.deepEqual([a.peer.fileChannel.state, b.peer.fileChannel.state], ['open', 'open'], 'the file channel opens with the connection')
        const files: Record<'a' | 'b', Array<string | Uint8Array>> = { a: [], b: [] }
        const syncAtB: Array<string | Uint8Array> = []
        a.peer.fileChannel.on('message', (m) => void files.a.push(m))
        b.peer.syncChannel.on('message', (m) => void syncAtB.push(m))
        // b's file channel counts bulk bytes and keeps only the short messages, and notes where the bulk stood
        // when the app channel's message arrived.
        let bulkBytes = 0
        let bulkPieces = 0
        let outOfOrder = 0
        b.peer.fileChannel.on('message', (m) => {
          if (typeof m === 'string' || m.byteLength < 1024) return void files.b.push(m)
          if (new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0) !== bulkPieces) outOfOrder++
          bulkPieces++
          bulkBytes += m.byteLength
        })
        a.peer.fileChannel.send('file 1')
        a.peer.fileChannel.send(bytes(100, 9))
        a.peer.syncChannel.send('sync 1')
        a.peer.send('app 1')
        b.peer.fileChannel.send('file back')
        await b.received(1, openMs)
        for (const [what, done] of [
          ['b got 2 file messages', () => files.b.length >= 2],
          ['a got 1 file message', () => files.a.length >= 1],
          ['b got 1 sync message', () => syncAtB.length >= 1],
        ] as const) {
          // The file and sync channels' messages are not among what Watched records: polled.
          const deadline = performance.now() + openMs
          while (!done() && performance.now() < deadline) await sleep(5)
          assert.ok(done(), what)
        }
        assert.deepEqual(b.messages, ['app 1'], 'the app channel carried only its own message')
        assert.deepEqual(syncAtB, ['sync 1'], 'the sync channel carried only its own message')
        assert.equal(files.b[0], 'file 1')
        assertBytes(files.b[1], bytes(100, 9), 'binary on the file channel')
        assert.deepEqual(files.a, ['file back'])

        // 4 MB on the file channel in 64 KiB pieces, as a file sender sends them: while less than 1 MiB is
        // queued, then on `drain`. After the first MB, one short app message, which must not wait for the rest.
        const piece = 64 * 1024
        const total = 4 * 1024 * 1024
        const highWater = 1024 * 1024
        const channel = a.peer.fileChannel
        let bulkAtApp: number | undefined
        const appArrived = b.until('the app message', openMs * 6, () => b.messages.length >= 2).then(() => (bulkAtApp = bulkBytes))
        const started = performance.now()
        for (let sent = 0, i = 0; sent < total; sent += piece, i++) {
          if (channel.bufferedAmount >= highWater) {
            await new Promise<void>((resolve, reject) => {
              const offDrain = channel.on('drain', () => (offDrain(), offClose(), resolve()))
              const offClose = channel.on('close', (reason) => (offDrain(), offClose(), reject(new Error(`closed while sending: ${reason}`))))
            })
          }
          const frame = bytes(piece, i)
          new DataView(frame.buffer).setUint32(0, i)
          channel.send(frame)
          assert.ok(channel.bufferedAmount <= highWater + piece, `bufferedAmount ${channel.bufferedAmount} after piece ${i}`)
          if (sent + piece === 1024 * 1024) a.peer.send('overtake')
        }
        await appArrived
        assert.equal(b.messages[1], 'overtake')
        const deadline = performance.now() + openMs * 6
        while (bulkBytes < total && performance.now() < deadline) await sleep(10)
        const ms = performance.now() - started
        t.diagnostic(`4 MB on the file channel in ${ms.toFixed(0)} ms; the app message arrived after ${((bulkAtApp ?? 0) / 1024).toFixed(0)} KiB of it`)
        assert.equal(bulkBytes, total, 'all of the bulk arrived')
        assert.equal(outOfOrder, 0, 'the bulk arrived in order')
        assert.ok(bulkAtApp !== undefined && bulkAtApp < total, `the app message waited for all ${total} bytes of the file channel`)
        assert.equal(files.b.length, 2, 'no bulk piece was taken for a short message')
        assert.equal(b.messages.length, 2, 'no bulk piece reached the app channel')
      })

      it('carries strings and binary exactly, both ways, binary as a plain Uint8Array', { timeout: 20_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        const { a, b } = await connect()
        const strings = ['hello', 'ñandú 🐧 中文 \u2028', '\u0000', '{"v":1,"type":"table"}', 'x'.repeat(5000)]
        const backing = bytes(64, 7)
        const binaries = [new Uint8Array([0, 1, 255]), bytes(1), bytes(3000, 3), backing.subarray(5, 21)]
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          const before = to.messages.length
          for (const s of strings) from.peer.send(s)
          for (const x of binaries) from.peer.send(x)
          await to.received(before + strings.length + binaries.length, openMs)
          const got = to.messages.slice(before)
          strings.forEach((s, i) => assert.equal(got[i], s))
          binaries.forEach((x, i) => assertBytes(got[strings.length + i], x, `binary ${i}`))
        }
      })

      it('carries a 60 KiB message, binary and text, both ways', { timeout: 20_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        const { a, b } = await connect()
        const big = bytes(60 * 1024, 11)
        const text = 'ñ'.repeat(30 * 1024) // 60 KiB of UTF-8
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          assert.ok(from.peer.maxMessageSize >= 60 * 1024, `maxMessageSize ${from.peer.maxMessageSize}`)
          const before = to.messages.length
          from.peer.send(big)
          from.peer.send(text)
          await to.received(before + 2, openMs)
          assertBytes(to.messages[before], big, '60 KiB binary')
          assert.equal(to.messages[before + 1], text)
        }
      })

      it('delivers a message of exactly maxMessageSize, both ways (no stack drops it silently)', { timeout: 20_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        const { a, b } = await connect()
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          const max = from.peer.maxMessageSize
          assert.ok(max >= 64 * 1024, `maxMessageSize ${max} is below RFC 8841's default`)
          const before = to.messages.length
          from.peer.send(bytes(max, 5))
          await to.received(before + 1, openMs)
          assertBytes(to.messages[before], bytes(max, 5), `${max} bytes`)
          t.diagnostic(`${from.label}: maxMessageSize ${max}`)
        }
      })

      it('keeps the order of 1000 mixed messages', { timeout: 30_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        const { a, b } = await connect()
        const n = 1000
        for (let i = 0; i < n; i++) {
          if (i % 100 === 50) a.peer.send(bytes(60 * 1024, i))
          else if (i % 2) a.peer.send(new Uint8Array(new Uint32Array([i]).buffer))
          else a.peer.send(String(i))
        }
        await b.received(n, openMs * 4)
        b.messages.forEach((m, i) => {
          if (i % 100 === 50) assertBytes(m, bytes(60 * 1024, i), `message ${i}`)
          else if (i % 2) assert.equal(m instanceof Uint8Array && new Uint32Array(m.slice().buffer)[0], i, `message ${i}`)
          else assert.equal(m, String(i), `message ${i}`)
        })
      })

      it('reports backpressure: drain once bufferedAmount falls back to lowWaterMark', { timeout: 30_000 }, async (t) => {
        const { connect, openMs } = await harness(t)
        const lowWaterMark = 64 * 1024
        const { a, b } = await connect('offerer', 'answerer', { options: { lowWaterMark } })
        assert.equal(a.peer.lowWaterMark, lowWaterMark)
        const n = 20
        for (let i = 0; i < n; i++) a.peer.send(bytes(60 * 1024, i))
        assert.ok(a.peer.bufferedAmount > lowWaterMark, `bufferedAmount ${a.peer.bufferedAmount} right after sending ${n * 60} KiB`)
        await a.until('drain', openMs * 4, () => a.drains > 0)
        assert.ok(a.peer.bufferedAmount <= lowWaterMark, `bufferedAmount ${a.peer.bufferedAmount} at drain`)
        await b.received(n, openMs * 4)
      })

      it('refuses to send before open, empty, too large or after close, with typed errors', { timeout: 20_000 }, async (t) => {
        const { make, connect, openMs } = await harness(t)
        const fresh = make('offerer')
        throwsWith('PEER', () => fresh.peer.send('early'), 'send on a new peer')
        await fresh.peer.createOffer()
        throwsWith('PEER', () => fresh.peer.send('early'), 'send while connecting')

        const { a, b } = await connect()
        throwsWith('BAD_INPUT', () => a.peer.send(''), 'empty string')
        throwsWith('BAD_INPUT', () => a.peer.send(new Uint8Array(0)), 'empty binary')
        throwsWith('TOO_LARGE', () => a.peer.send(new Uint8Array(a.peer.maxMessageSize + 1)), 'binary over maxMessageSize')
        throwsWith('TOO_LARGE', () => a.peer.send('é'.repeat(Math.ceil(a.peer.maxMessageSize / 2) + 1)), 'UTF-8 text over maxMessageSize')
        // Refused messages leave the channel as it was.
        await pingPong(a, b, openMs)
        assert.equal(a.peer.state, 'open')
        a.peer.close()
        throwsWith('PEER', () => a.peer.send('late'), 'send after close')
      })
    })

    describe('closing', () => {
      for (const closer of ['offering', 'answering'] as const) {
        it(`close() on the ${closer} side ends the other with close('remote') within the bound`, { timeout: 20_000 }, async (t) => {
          const { connect, closeMs } = await harness(t)
          const { a, b } = await connect()
          const [near, far] = closer === 'offering' ? [a, b] : [b, a]
          near.peer.close()
          // Fires before close() returns: callers may release their state right after calling it.
          assert.deepEqual(near.closes, [{ reason: 'local', detail: undefined }])
          assert.equal(near.peer.state, 'closed')
          const started = performance.now()
          const { reason, detail } = await far.closed(closeMs)
          t.diagnostic(`remote close seen after ${(performance.now() - started).toFixed(0)} ms`)
          assert.equal(reason, 'remote', `reason ${reason} (${detail ?? ''})`)
          assert.equal(far.peer.state, 'closed')
          await sleep(SETTLE_MS)
          assert.equal(near.closes.length, 1, near.describe())
          assert.equal(far.closes.length, 1, far.describe())
          throwsWith('PEER', () => far.peer.send('late'), 'send after a remote close')
        })
      }

      it("close() before open fires close('local') exactly once, at every stage", { timeout: 20_000 }, async (t) => {
        const { make } = await harness(t)
        const stages: [string, (w: Watched) => Promise<void>][] = [
          ['a new peer', async () => {}],
          ['an offerer whose offer is made', async (w) => void (await w.peer.createOffer())],
          [
            'an answerer whose answer is made',
            async (w) => {
              const offerer = make('offerer', undefined, 'offerer left waiting')
              await w.peer.acceptOffer(await offerer.peer.createOffer())
            },
          ],
        ]
        for (const [stage, reach] of stages) {
          const w = make(stage.startsWith('an answerer') ? 'answerer' : 'offerer', undefined, stage)
          await reach(w)
          w.peer.close()
          w.peer.close()
          assert.deepEqual(w.closes, [{ reason: 'local', detail: undefined }], stage)
          assert.equal(w.peer.state, 'closed')
          await rejectsWith('PEER', w.peer.createOffer(), `${stage}: createOffer after close`)
        }
        // close() while the offer is still being made: the pending call rejects, nothing opens.
        const pending = make('offerer', undefined, 'closed while gathering')
        const offer = pending.peer.createOffer()
        pending.peer.close()
        await rejectsWith('PEER', offer, 'createOffer interrupted by close')
        await sleep(SETTLE_MS)
        for (const w of [pending]) {
          assert.deepEqual(w.closes, [{ reason: 'local', detail: undefined }], w.describe())
          assert.equal(w.opens, 0)
        }
      })

      it("times out with close('timeout') when the answer is never applied", { timeout: 20_000 }, async (t) => {
        const { make, closeMs } = await harness(t)
        const connectTimeoutMs = 600
        const a = make('offerer', { connectTimeoutMs }, 'offerer never given the answer')
        const b = make('answerer', { connectTimeoutMs }, 'answerer')
        const started = performance.now()
        await b.peer.acceptOffer(await a.peer.createOffer())
        const { reason } = await b.closed(connectTimeoutMs + closeMs)
        const elapsed = performance.now() - started
        assert.equal(reason, 'timeout')
        assert.ok(elapsed >= connectTimeoutMs * 0.9, `timed out after ${elapsed.toFixed(0)} ms, before its ${connectTimeoutMs} ms deadline`)
        // An offer waits for its answer as long as signaling likes: its deadline starts at acceptAnswer.
        assert.equal(a.peer.state, 'connecting')
        assert.equal(a.closes.length, 0)
        await sleep(SETTLE_MS)
        assert.equal(b.closes.length, 1, b.describe())
      })

      it('an offerer whose answerer is gone ends by its deadline, never opening', { timeout: 20_000 }, async (t) => {
        const { make, closeMs } = await harness(t)
        const connectTimeoutMs = 800
        const a = make('offerer', { connectTimeoutMs }, 'offerer')
        const b = make('answerer', undefined, 'answerer that leaves')
        const answer = await b.peer.acceptOffer(await a.peer.createOffer())
        b.peer.close()
        await a.peer.acceptAnswer(answer)
        const { reason } = await a.closed(connectTimeoutMs + closeMs)
        assert.ok(reason === 'timeout' || reason === 'failed', `reason ${reason}`)
        assert.equal(a.opens, 0)
      })
    })

    describe('bad descriptions and misuse', () => {
      it('acceptAnswer with garbage rejects with MallaError, ends the peer once, and throws nothing later', { timeout: 30_000 }, async (t) => {
        const { make, connect } = await harness(t)
        const { offer, answer } = await connect()
        const garbage: [string, unknown][] = [
          ['a word', 'garbage'],
          ['an empty string', ''],
          ['only v=0', 'v=0\r\n'],
          ['an offer', offer],
          ['no fingerprint', answer.replace(/^a=fingerprint:.*$/m, '')],
          ['the first half', answer.slice(0, answer.length >> 1)],
          ['JSON', JSON.stringify({ type: 'answer', sdp: answer })],
          ['not a string', 42],
        ]
        for (const [what, sdp] of garbage) {
          const w = make('offerer', undefined, `offerer given ${what}`)
          await w.peer.createOffer()
          let pending: Promise<void> | undefined
          assert.doesNotThrow(() => (pending = w.peer.acceptAnswer(sdp as string)), `${what}: threw synchronously`)
          await rejectsWith('PEER', pending as Promise<void>, what)
          assert.deepEqual(
            w.closes.map((c) => c.reason),
            ['failed'],
            `${what}: ${w.describe()}`,
          )
          assert.equal(w.peer.state, 'closed')
        }
        // Anything thrown or rejected later, from a timer or the stack's own tasks, fails this test.
        await sleep(SETTLE_MS * 2)
      })

      it('acceptOffer with garbage rejects with MallaError and ends the peer once', { timeout: 20_000 }, async (t) => {
        const { make } = await harness(t)
        for (const sdp of ['garbage', '', 'v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n']) {
          const w = make('answerer', undefined, `answerer given ${JSON.stringify(sdp)}`)
          await rejectsWith('PEER', w.peer.acceptOffer(sdp), JSON.stringify(sdp))
          assert.deepEqual(w.closes.map((c) => c.reason), ['failed'])
        }
        await sleep(SETTLE_MS)
      })

      it('an answer with a wrong fingerprint never opens and ends by the deadline', { timeout: 20_000 }, async (t) => {
        const { make, closeMs } = await harness(t)
        const connectTimeoutMs = 1_500
        const a = make('offerer', { connectTimeoutMs }, 'offerer')
        const b = make('answerer', { connectTimeoutMs }, 'answerer')
        const answer = await b.peer.acceptOffer(await a.peer.createOffer())
        // Same shape, another certificate: only the DTLS handshake can tell.
        const forged = answer.replace(/^(a=fingerprint:sha-256 )(..)/m, (_, p: string, h: string) => p + (h === '00' ? '01' : '00'))
        assert.notEqual(forged, answer)
        await a.peer.acceptAnswer(forged)
        const { reason } = await a.closed(connectTimeoutMs + closeMs)
        assert.ok(reason === 'failed' || reason === 'timeout', `reason ${reason}`)
        assert.equal(a.opens, 0)
      })

      it("refuses calls in the wrong order with MallaError('PEER'), leaving the peer as it was", { timeout: 20_000 }, async (t) => {
        const { make, connect, openMs } = await harness(t)
        const fresh = make('offerer')
        await rejectsWith('PEER', fresh.peer.acceptAnswer('v=0\r\n'), 'acceptAnswer before createOffer')
        assert.equal(fresh.peer.state, 'new')
        await fresh.peer.createOffer()
        await rejectsWith('PEER', fresh.peer.createOffer(), 'createOffer twice')
        await rejectsWith('PEER', fresh.peer.acceptOffer('v=0\r\n'), 'acceptOffer on an offerer')
        assert.equal(fresh.peer.state, 'connecting')
        assert.equal(fresh.closes.length, 0)

        const { a, b, answer } = await connect()
        await rejectsWith('PEER', a.peer.acceptAnswer(answer), 'acceptAnswer twice')
        await rejectsWith('PEER', b.peer.acceptAnswer(answer), 'acceptAnswer on an answerer')
        await pingPong(a, b, openMs)
      })
    })
  })
}
