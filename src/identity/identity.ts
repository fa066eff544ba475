import { badInput, MallaError } from '../core/errors.js'
import { ALGO_EDDSA_LEGACY, ed25519KeyBody, parseEd25519Key, type Ed25519PublicKey } from './pgp-packets.js'
import { signDetached, verifyDetached, type SignatureCheck } from './pgp-signature.js'

/**
 * A person's identity: an OpenPGP key pair (Ed25519 to sign, Curve25519 to receive encrypted messages), made
 * in the browser or by GnuPG, kept as ASCII armor so it moves both ways between malla and GnuPG. The person is
 * the key's fingerprint. openpgp.js (5.11: version 6 refuses to load without WebCrypto, which pages on plain
 * http:// do not have) is imported only here, lazily, to make, import and export whole keys; signing and
 * verifying bytes take the Ed25519 material directly (pgp-signature.ts).
 */
export interface Identity extends PublicIdentity {
  /** A detached OpenPGP signature of `data` (binary; `gpg --verify SIG DATA` accepts it), made now or at `created` (Unix seconds). */
  sign(data: Uint8Array, created?: number): Uint8Array
  /** The secret key, ASCII-armored and unprotected (`gpg --import` takes it): whoever has it is this person. */
  exportSecret(): string
}

/** Someone's public key, read and its self-signature checked: whom a signature can be checked against. */
export interface PublicIdentity {
  /** 40 uppercase hex digits, as GnuPG prints them. */
  readonly fingerprint: string
  /** The name of the key's primary user id (without the e-mail part). */
  readonly name: string
  readonly key: Ed25519PublicKey
  /** The public key, ASCII-armored. */
  readonly publicKey: string
  /** Checks a detached signature of `data` by this key; never throws. */
  verify(data: Uint8Array, signature: Uint8Array): SignatureCheck
}

/** A display name for a key's user id: 1-64 characters after trimming, no control characters. */
const NAME = /^[^\u0000-\u001f\u007f]{1,64}$/

type OpenPgp = typeof import('openpgp')
let loading: Promise<OpenPgp> | undefined
/** openpgp.js, imported once, on first use: a bundler makes a chunk of it that the first page load does not fetch. */
export function openpgp(): Promise<OpenPgp> {
  loading ??= import('openpgp')
  return loading
}

/** A new key pair for `name`: Ed25519 primary key (certify, sign) and a Curve25519 subkey (encrypt). */
export async function createIdentity(name: string): Promise<Identity> {
  const clean = name.trim()
  if (!NAME.test(clean)) throw badInput('a name is 1-64 characters, without control characters')
  const pgp = await openpgp()
  const { privateKey } = await pgp.generateKey({ type: 'ecc', curve: 'ed25519', userIDs: [{ name: clean }], format: 'object' })
  return identityOf(privateKey)
}

/**
 * The identity in an ASCII-armored secret key (malla's or GnuPG's `gpg --export-secret-keys --armor`);
 * `passphrase` unlocks a protected one. Throws `BAD_INPUT` for anything else, for a key that is not Ed25519,
 * or one whose self-signature does not verify (revoked, expired, tampered with).
 */
export async function importIdentity(armored: string, passphrase?: string): Promise<Identity> {
  const pgp = await openpgp()
  let key = await pgp.readPrivateKey({ armoredKey: armored }).catch((e: Error) => {
    throw badInput(`not an OpenPGP secret key: ${e.message}`)
  })
  if (!key.isDecrypted()) {
    if (passphrase === undefined) throw badInput('the secret key is protected by a passphrase: give it to import the key')
    key = await pgp.decryptKey({ privateKey: key, passphrase }).catch((e: Error) => {
      throw badInput(`cannot unlock the secret key: ${e.message}`)
    })
  }
  return identityOf(key)
}

/** Someone's ASCII-armored public key (or a secret key, of which only the public part is kept), its self-signature checked. */
export async function readPublicIdentity(armored: string): Promise<PublicIdentity> {
  const pgp = await openpgp()
  const key = await pgp.readKey({ armoredKey: armored }).catch((e: Error) => {
    throw badInput(`not an OpenPGP key: ${e.message}`)
  })
  return publicIdentityOf(key.toPublic())
}

type Key = Awaited<ReturnType<OpenPgp['readKey']>>
type PrivateKey = Awaited<ReturnType<OpenPgp['readPrivateKey']>>

async function publicIdentityOf(key: Key): Promise<PublicIdentity> {
  const { primary, name } = await checkedPrimary(key)
  return { fingerprint: primary.fingerprint, name, key: primary, publicKey: key.toPublic().armor(), verify: (data, sig) => verifyDetached(data, sig, primary) }
}

async function identityOf(key: PrivateKey): Promise<Identity> {
  const pub = await publicIdentityOf(key)
  const seed = (key.keyPacket as { privateParams?: { seed?: unknown } | null }).privateParams?.seed
  if (!(seed instanceof Uint8Array) || seed.byteLength !== 32) throw badInput('the secret key has no Ed25519 secret to sign with')
  const primary = pub.key
  // A seed that does not belong to the key would sign what nobody can verify: checked once, here.
  const probe = Uint8Array.of(0x6d, 0x61, 0x6c, 0x6c, 0x61)
  if (!verifyDetached(probe, signDetached(probe, primary, seed), primary).valid) throw badInput('the secret key does not match its public key')
  const secret = key.armor()
  return { ...pub, sign: (data, created) => signDetached(data, primary, seed, created), exportSecret: () => secret }
}

/** The primary key as an Ed25519 key, after openpgp.js has checked its self-signatures; and its user's name. */
async function checkedPrimary(key: Key): Promise<{ primary: Ed25519PublicKey; name: string }> {
  try {
    await key.verifyPrimaryKey()
  } catch (e) {
    throw badInput(`the key's self-signature does not hold: ${(e as Error).message}`)
  }
  const packet = key.keyPacket as unknown as { algorithm: unknown; created: Date; publicParams: { Q?: Uint8Array } }
  const q = packet.publicParams.Q
  if (!(q instanceof Uint8Array) || q.byteLength !== 33 || q[0] !== 0x40 || packet.algorithm !== ALGO_EDDSA_LEGACY) {
    throw badInput('malla needs an Ed25519 key (GnuPG: gpg --quick-gen-key NAME future-default)')
  }
  const primary = parseEd25519Key(ed25519KeyBody(q.subarray(1), Math.floor(packet.created.getTime() / 1000)))
  if (primary.fingerprint !== key.getFingerprint().toUpperCase()) throw new MallaError('INTERNAL', 'the Ed25519 key packet malla rebuilt does not have the key\'s fingerprint')
  const user = await key.getPrimaryUser().catch(() => undefined)
  const name = user?.user.userID?.name || user?.user.userID?.userID || ''
  return { primary, name: name.slice(0, 64) }
}
