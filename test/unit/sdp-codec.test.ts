import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { compactSession, expandSession, sessionFacts, toSdp, withoutShadowedNames } from '../../src/signaling/sdp-codec.js'

/** An offer as Chromium writes it for one data channel (host candidate hidden behind mDNS). */
const CHROMIUM_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=candidate:3304532213 1 udp 2113937151 9c2f7a1e-6b3c-4a4e-9f41-2f0c1d0e7b55.local 54321 typ host generation 0 network-cost 999',
  'a=candidate:1259410711 1 udp 1677729535 10.99.0.2 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 network-cost 999',
  'a=candidate:842163049 1 tcp 1518280447 10.99.0.2 9 typ host tcptype active generation 0',
  'a=ice-ufrag:Zx9T',
  'a=ice-pwd:q3kXh7gL0cYb1vT6Nw8pR2sF',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 4F:2A:19:C0:7D:E5:03:88:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:0A:1B:2C:3D:4E:5F:60:71',
  'a=setup:actpass',
  'a=mid:0',
  'a=sctp-port:5000',
  'a=max-message-size:262144',
  '',
].join('\r\n')

describe('compact session descriptions', () => {
  it('keeps only what rebuilds the session, in well under 400 bytes of JSON', () => {
    const facts = sessionFacts(CHROMIUM_OFFER)
    assert.equal(facts.ufrag, 'Zx9T')
    assert.equal(facts.fingerprint, '4f2a19c07de50388aabbccddeeff00112233445566778899' + '0a1b2c3d4e5f6071')
    assert.equal(facts.candidates.length, 3)
    assert.equal(facts.candidates[2]?.tcpType, 'active')
    const wire = JSON.stringify(compactSession(facts))
    assert.ok(wire.length < 300, `${wire.length} bytes: ${wire}`)
    assert.deepEqual(expandSession(JSON.parse(wire)), facts)
  })

  it('rebuilds an SDP that reads back to the same facts, with the answerer\'s DTLS role', () => {
    const facts = sessionFacts(CHROMIUM_OFFER)
    const offer = toSdp(facts, 'offer')
    assert.deepEqual(sessionFacts(offer), facts)
    assert.match(offer, /^v=0\r\n/)
    assert.match(offer, /a=fingerprint:sha-256 4F:2A:19:C0/)
    const answer = sessionFacts(toSdp({ ...facts, setup: 'actpass' }, 'answer'))
    assert.equal(answer.setup, 'active')
  })

  it('refuses malformed compact sessions with BAD_INPUT', () => {
    const good = compactSession(sessionFacts(CHROMIUM_OFFER))
    const bad: unknown[] = [
      null,
      'x',
      [...good.slice(0, 4)],
      ['a b', ...good.slice(1)],
      [good[0], 'short', ...good.slice(2)],
      [good[0], good[1], 'notbase64!', ...good.slice(3)],
      [...good.slice(0, 3), 'sideways', ...good.slice(4)],
      [...good.slice(0, 4), ['1 1 udp 1 1.2.3.4 70000 host']],
      [...good.slice(0, 4), ['1 1 udp 1 1.2.3.4 1 host; rm -rf']],
      [...good.slice(0, 4), Array(17).fill('1 1 udp 1 1.2.3.4 9 host')],
    ]
    for (const value of bad) assert.throws(() => expandSession(value), (e) => isMallaError(e, 'BAD_INPUT'), JSON.stringify(value))
    assert.throws(() => sessionFacts('v=0\r\n'), (e) => isMallaError(e, 'BAD_INPUT'))
  })

  it('drops an mDNS host candidate only when a server-reflexive one has its port', () => {
    const facts = sessionFacts(CHROMIUM_OFFER)
    const kept = withoutShadowedNames(facts).candidates.map((c) => `${c.type} ${c.address} ${c.port}`)
    assert.deepEqual(kept, ['srflx 10.99.0.2 54321', 'host 10.99.0.2 9'])
    // A NAT that changed the port: the name may be the only way in from the same segment, so it stays.
    const natted = sessionFacts(CHROMIUM_OFFER.replace('10.99.0.2 54321 typ srflx', '10.99.0.2 61000 typ srflx'))
    assert.equal(withoutShadowedNames(natted).candidates.length, 3)
    // No STUN at all (a plain LibreMesh router): the name is all there is.
    const noStun = sessionFacts(CHROMIUM_OFFER.split('\r\n').filter((l) => !l.includes('typ srflx')).join('\r\n'))
    assert.deepEqual(withoutShadowedNames(noStun), noStun)
  })
})
