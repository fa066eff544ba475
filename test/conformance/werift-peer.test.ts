import assert from 'node:assert/strict'
import { it } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { silentLogger } from '../../src/core/log.js'
import { StunResponder } from '../../src/node/daemon/stun-responder.js'
import { weriftRtcFactory } from '../../src/node/rtc/werift-peer.js'
import { sessionFacts } from '../../src/signaling/sdp-codec.js'
import { rtcSuite } from './rtc-suite.js'

/** Loopback only: nothing here may reach an address off this machine, and werift would skip 127.0.0.1. */
const loopback = weriftRtcFactory({ hostAddresses: ['127.0.0.1'] })

rtcSuite('werift ↔ werift over loopback', async () => ({ offerer: loopback, answerer: loopback }))

it('werift: gathers only the given host addresses, and no STUN candidate at all', { timeout: 10_000 }, async (t) => {
  const peer = loopback()
  t.after(() => peer.close())
  const started = performance.now()
  const facts = sessionFacts(await peer.createOffer())
  // The trap: with werift's built-in Google STUN default, this took ~5 s and sent packets off the machine.
  assert.ok(performance.now() - started < 1_000, `gathering took ${(performance.now() - started).toFixed(0)} ms`)
  assert.deepEqual(
    facts.candidates.map((c) => [c.address, c.type, c.protocol]),
    [['127.0.0.1', 'host', 'udp']],
  )
  assert.equal(facts.maxMessageSize, 256 * 1024)
})

it('werift: asks the given STUN server (a local responder, as a router runs one) and still connects', { timeout: 15_000 }, async (t) => {
  const stun = new StunResponder({ port: 0, host: '127.0.0.1', log: silentLogger })
  const port = await stun.start()
  const factory = weriftRtcFactory({ hostAddresses: ['127.0.0.1'], stunUrls: [`stun:127.0.0.1:${port}`] })
  const a = factory()
  const b = factory()
  t.after(async () => {
    a.close()
    b.close()
    await stun.stop()
  })
  const opened = Promise.all([a, b].map((p) => new Promise<void>((resolve, reject) => {
    p.on('open', resolve)
    p.on('close', (reason, detail) => reject(new Error(`closed: ${reason} ${detail ?? ''}`)))
  })))
  const offer = await a.createOffer()
  await a.acceptAnswer(await b.acceptOffer(offer))
  await opened
  assert.ok((stun.info()?.answered ?? 0) >= 2, `the responder answered ${stun.info()?.answered} Binding requests`)
  assert.ok(sessionFacts(offer).candidates.every((c) => c.address === '127.0.0.1'), offer)
})

it('werift: refuses bad options with BAD_INPUT', { timeout: 5_000 }, () => {
  for (const options of [{ hostAddresses: [] }, { hostAddresses: ['localhost'] }, { stunUrls: ['turn:10.0.0.1'] }, { connectTimeoutMs: -1 }]) {
    assert.throws(() => weriftRtcFactory(options), (e: unknown) => isMallaError(e, 'BAD_INPUT'), JSON.stringify(options))
    assert.throws(() => weriftRtcFactory()(options), (e: unknown) => isMallaError(e, 'BAD_INPUT'), JSON.stringify(options))
  }
})
