import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import fc from 'fast-check'
import * as openpgp from 'openpgp'
import { isMallaError } from '../../src/core/errors.js'
import { createIdentity, importIdentity, readPublicIdentity, type Identity } from '../../src/identity/identity.js'
import { readPacket } from '../../src/identity/pgp-packets.js'
import { verifyDetached } from '../../src/identity/pgp-signature.js'

const text = (s: string) => new TextEncoder().encode(s)

describe('OpenPGP detached signatures made with Ed25519 directly', () => {
  let ana: Identity
  let bea: Identity
  before(async () => {
    ;[ana, bea] = await Promise.all([createIdentity('Ana'), createIdentity('Bea')])
  })

  it('verify what was signed, at the time it was signed', () => {
    const sig = ana.sign(text('offer 1'), 1_800_000_000)
    assert.deepEqual(ana.verify(text('offer 1'), sig), { valid: true, created: 1_800_000_000 })
  })

  it('refuse other bytes, another signer, and a signature with any one byte changed', () => {
    const data = text('offer 1')
    const sig = ana.sign(data)
    assert.equal(ana.verify(text('offer 2'), sig).valid, false)
    const other = bea.verify(data, sig)
    assert.deepEqual(other, { valid: false, why: 'signed by another key' })
    for (let i = 0; i < sig.byteLength; i++) {
      const bad = sig.slice()
      bad[i] = (bad[i] as number) ^ 0x01
      const check = ana.verify(data, bad)
      // The unhashed area is not covered by the signature (RFC 4880 5.2.3): a changed issuer key id there is harmless.
      const unhashed = i >= 2 + 6 + 29 + 2 && i < 2 + 6 + 29 + 2 + 10
      if (!unhashed) assert.equal(check.valid, false, `byte ${i} changed and still valid`)
    }
  })

  it('never throw on a stranger\'s bytes, and never call them valid', () => {
    const data = text('x')
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.equal(verifyDetached(data, bytes, ana.key).valid, false)
      }),
      { numRuns: 2000 },
    )
    // Made-up packets around a real one: cut short, lengths that lie, a partial length, trailing bytes.
    const sig = ana.sign(data)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sig.byteLength - 1 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (at, junk) => {
        const spliced = new Uint8Array([...sig.subarray(0, at), ...junk, ...sig.subarray(at + junk.byteLength)])
        const check = verifyDetached(data, spliced, ana.key)
        if (check.valid) assert.deepEqual(spliced.subarray(0, at), sig.subarray(0, at))
      }),
      { numRuns: 2000 },
    )
    assert.deepEqual(verifyDetached(data, new Uint8Array(2000), ana.key), { valid: false, why: 'signature too long' })
  })

  it('refuse a signature with an unknown critical subpacket', () => {
    const sig = ana.sign(text('x'))
    const { body } = readPacket(sig)
    // The creation-time subpacket (first in the hashed area) becomes an unknown critical one.
    const bad = sig.slice()
    bad[sig.byteLength - body.byteLength + 7] = 0x80 | 50
    assert.match(String((verifyDetached(text('x'), bad, ana.key) as { why: string }).why), /critical/)
  })

  it('verify signatures openpgp.js makes (SHA-256 and SHA-512), and openpgp.js verifies ours', async () => {
    const secret = await openpgp.readPrivateKey({ armoredKey: ana.exportSecret() })
    const data = text('made by openpgp.js')
    for (const hash of [openpgp.enums.hash.sha256, openpgp.enums.hash.sha512]) {
      const theirs = await openpgp.sign({ message: await openpgp.createMessage({ binary: data }), signingKeys: secret, detached: true, format: 'binary', config: { preferredHashAlgorithm: hash } })
      assert.equal(ana.verify(data, theirs as Uint8Array).valid, true)
    }
    const ours = ana.sign(data)
    const result = await openpgp.verify({ message: await openpgp.createMessage({ binary: data }), signature: await openpgp.readSignature({ binarySignature: ours }), verificationKeys: secret.toPublic() })
    await (result.signatures[0] as { verified: Promise<boolean> }).verified
  })

  it('a key moves through its armor: same fingerprint, name and signatures', async () => {
    const again = await importIdentity(ana.exportSecret())
    assert.equal(again.fingerprint, ana.fingerprint)
    assert.equal(again.name, 'Ana')
    const pub = await readPublicIdentity(ana.publicKey)
    assert.equal(pub.fingerprint, ana.fingerprint)
    assert.equal(pub.verify(text('y'), again.sign(text('y'))).valid, true)
    assert.match(ana.fingerprint, /^[0-9A-F]{40}$/)
  })

  it('refuse keys malla cannot use, with a reason', async () => {
    const { privateKey } = await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name: 'R' }] })
    await assert.rejects(importIdentity(privateKey), (e) => isMallaError(e, 'BAD_INPUT') && /Ed25519/.test(e.message))
    await assert.rejects(importIdentity('not a key'), (e) => isMallaError(e, 'BAD_INPUT'))
    await assert.rejects(importIdentity(ana.publicKey), (e) => isMallaError(e, 'BAD_INPUT'))
    const locked = await openpgp.encryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: ana.exportSecret() }), passphrase: 'pw' })
    await assert.rejects(importIdentity(locked.armor()), (e) => isMallaError(e, 'BAD_INPUT') && /passphrase/.test(e.message))
    await assert.rejects(importIdentity(locked.armor(), 'wrong'), (e) => isMallaError(e, 'BAD_INPUT'))
    assert.equal((await importIdentity(locked.armor(), 'pw')).fingerprint, ana.fingerprint)
    await assert.rejects(createIdentity(''), (e) => isMallaError(e, 'BAD_INPUT'))
    await assert.rejects(createIdentity('a\u0000b'), (e) => isMallaError(e, 'BAD_INPUT'))
  })
})
