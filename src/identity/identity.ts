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
  /**
   * `text` encrypted to `to` (its Curve25519 subkey) and signed by this key, as an ASCII-armored OpenPGP
   * message: `gpg --decrypt` reads it and names the signer. Uses openpgp.js.
   */
  encrypt(text: string, to: PublicIdentity): Promise<string>
  /**
   * The text of an `encrypt`ed message to this key, which must be signed by `from`: throws `BAD_INPUT` for one
   * that is not for this key, not signed by `from`, tampered with, or longer than `MAX_MESSAGE_CHARS`.
   */
  decrypt(armored: string, from: PublicIdentity): Promise<{ readonly text: string; readonly signed: Date }>
  /** `readPublicIdentity`, for the code an identity is handed to: whoever has an identity has openpgp.js loaded. */
  readKey(key: string | Uint8Array): Promise<PublicIdentity>
}

/** The longest armored message `decrypt` reads: a message that waits in a table is bounded well below this. */
export const MAX_MESSAGE_CHARS = 64 * 1024

/** Someone's public key, read and its self-signature checked: whom a signature can be checked against. */
export interface PublicIdentity {
  /** 40 uppercase hex digits, as GnuPG prints them. */
  readonly fingerprint: string
  /** The name of the key's primary user id (without the e-mail part). */
  readonly name: string
  readonly key: Ed25519PublicKey
  /** The public key, ASCII-armored. */
  readonly publicKey: string
  /** The public key's packets (what the armor holds), for tables where every byte crosses every link. */
  readonly publicKeyBytes: Uint8Array
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

/**
 * Someone's public key, ASCII-armored or as its packets (`publicKeyBytes`), its self-signature checked. Of a
 * secret key only the public part is kept.
 */
export async function readPublicIdentity(key_: string | Uint8Array): Promise<PublicIdentity> {
  const pgp = await openpgp()
  const key = await (typeof key_ === 'string' ? pgp.readKey({ armoredKey: key_ }) : pgp.readKey({ binaryKey: key_ })).catch((e: Error) => {
    throw badInput(`not an OpenPGP key: ${e.message}`)
  })
  return publicIdentityOf(key.toPublic())
}

type Key = Awaited<ReturnType<OpenPgp['readKey']>>
type PrivateKey = Awaited<ReturnType<OpenPgp['readPrivateKey']>>

/** The openpgp.js key behind each public identity read or made here: what encryption needs. */
const pgpKeys = new WeakMap<PublicIdentity, Key>()

async function publicIdentityOf(key: Key): Promise<PublicIdentity> {
  const { primary, name } = await checkedPrimary(key)
  const pub = key.toPublic()
  const identity: PublicIdentity = { fingerprint: primary.fingerprint, name, key: primary, publicKey: pub.armor(), publicKeyBytes: pub.write(), verify: (data, sig) => verifyDetached(data, sig, primary) }
  pgpKeys.set(identity, pub)
  return identity
}

/** The openpgp.js key of `identity`, read again from its packets when it was not made here. */
async function pgpKeyOf(identity: PublicIdentity): Promise<Key> {
  const known = pgpKeys.get(identity)
  if (known) return known
  const pgp = await openpgp()
  const key = await pgp.readKey({ binaryKey: identity.publicKeyBytes }).catch((e: Error) => {
    throw badInput(`not an OpenPGP key: ${e.message}`)
  })
  if (key.getFingerprint().toUpperCase() !== identity.fingerprint) throw badInput('the key is not the one its fingerprint names')
  pgpKeys.set(identity, key)
  return key
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
  const pgp = await openpgp()
  return {
    ...pub,
    sign: (data, created) => signDetached(data, primary, seed, created),
    exportSecret: () => secret,
    readKey: readPublicIdentity,
    async encrypt(text, to) {
      const message = await pgp.createMessage({ text })
      const encrypted = await pgp.encrypt({ message, encryptionKeys: await pgpKeyOf(to), signingKeys: key }).catch((e: Error) => {
        throw badInput(`cannot encrypt to ${to.fingerprint}: ${e.message}`)
      })
      return encrypted as string
    },
    async decrypt(armored, from) {
      if (armored.length > MAX_MESSAGE_CHARS) throw badInput(`a message is at most ${MAX_MESSAGE_CHARS} characters`)
      try {
        const message = await pgp.readMessage({ armoredMessage: armored })
        const { data, signatures } = await pgp.decrypt({ message, decryptionKeys: key, verificationKeys: await pgpKeyOf(from), expectSigned: true })
        const signature = await signatures[0]?.signature
        return { text: data as string, signed: signature?.packets[0]?.created ?? new Date() }
      } catch (e) {
        throw badInput(`cannot read the message: ${(e as Error).message}`)
      }
    },
  }
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
