import type * as OpenPgp from 'openpgp'
import type { Identity } from '../../src/identity/identity.js'

/** Milliseconds of each operation, one value per repetition. */
export interface IdentityTimings {
  readonly keygen: number[]
  readonly sign: number[]
  readonly verify: number[]
  readonly openpgpSign: number[]
  readonly openpgpVerify: number[]
  readonly signatureBytes: number
  readonly openpgpSignatureBytes: number
  readonly secureContext: boolean
}

/**
 * What a signed offer costs its author and each reader: malla's Ed25519 path against openpgp.js 5.11 signing and
 * verifying the same bytes (an offer record's size) with the same key, detached and binary, `reps` times each.
 * Runs where it is called: in Node, or bundled into a page (bench/lib/identity-page.ts).
 */
export async function timeIdentity(createIdentity: (name: string) => Promise<Identity>, openpgp: typeof OpenPgp, reps: number): Promise<IdentityTimings> {
  const keygen: number[] = []
  let identity: Identity | undefined
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    identity = await createIdentity(`bench ${i}`)
    keygen.push(performance.now() - t0)
  }
  const id = identity as Identity
  // An offer record as it travels: about 330 bytes of JSON (ICE credentials, DTLS fingerprint, candidates).
  const offer = new TextEncoder().encode(JSON.stringify({ v: 1, room: 'bench', r: 'router-1', s: ['ufrag0123', 'x'.repeat(24), 'A'.repeat(43), 'actpass', Array.from({ length: 3 }, (_, i) => `1 1 udp 2122260223 10.13.0.${i} 5${i}123 typ host`)], exp: 1_800_000_000_000 }))
  const sign: number[] = []
  const verify: number[] = []
  let sig = id.sign(offer)
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now()
    sig = id.sign(offer)
    sign.push(performance.now() - t0)
    t0 = performance.now()
    if (!id.verify(offer, sig).valid) throw new Error('malla could not verify its own signature')
    verify.push(performance.now() - t0)
  }
  const secret = await openpgp.readPrivateKey({ armoredKey: id.exportSecret() })
  const pub = secret.toPublic()
  const openpgpSign: number[] = []
  const openpgpVerify: number[] = []
  let theirs: Uint8Array = new Uint8Array()
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now()
    theirs = (await openpgp.sign({ message: await openpgp.createMessage({ binary: offer }), signingKeys: secret, detached: true, format: 'binary' })) as Uint8Array
    openpgpSign.push(performance.now() - t0)
    t0 = performance.now()
    const result = await openpgp.verify({ message: await openpgp.createMessage({ binary: offer }), signature: await openpgp.readSignature({ binarySignature: theirs }), verificationKeys: pub })
    await (result.signatures[0] as { verified: Promise<boolean> }).verified
    openpgpVerify.push(performance.now() - t0)
  }
  return { keygen, sign, verify, openpgpSign, openpgpVerify, signatureBytes: sig.byteLength, openpgpSignatureBytes: theirs.byteLength, secureContext: globalThis.isSecureContext ?? true }
}
