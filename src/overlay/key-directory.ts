import { fromBase64Url, toBase64Url } from '../core/base64url.js'
import type { Entry, Json, TypeName } from '../core/types.js'
import type { Identity } from '../identity/identity.js'
import type { Replica } from '../replica/replica.js'
import { writeOwn } from '../replica/own-writes.js'
import { displayName } from './presence.js'

/** A room's key directory (docs/protocol.md §18.3): who is who, by fingerprint. */
export const KEYS_TABLE = '_keys'
/** A fingerprint as entries name it: 40 uppercase hex digits, as GnuPG prints them. */
export const FINGERPRINT_PATTERN = /^[0-9A-F]{40}$/
/** The public key's packets, base64url: an Ed25519 key with a Curve25519 subkey is ~600 characters. */
export const MAX_PUBLIC_KEY_CHARS = 4096
/**
 * About a day on malla daemons (120 s bleach rounds): a person's key outlives their visit, so that messages
 * can still be encrypted to them while they are away (§18.4).
 */
export const KEY_TTL = 720
/** A present person's entry is written again this often, well within its TTL. */
const REPUBLISH_MS = 60 * 60_000

/** A directory entry: whose key it is and what they call themselves. */
export interface DirectoryEntry {
  readonly fingerprint: string
  readonly name: string | undefined
  /** The public key's packets, as `readPublicIdentity` takes them. */
  readonly publicKey: Uint8Array
}

export interface KeyDirectoryOptions {
  readonly replica: Replica
  /** The room's directory type (`roomOwnType(room, KEYS_TABLE)`). */
  readonly type: TypeName
  /** This person, published under their fingerprint; a directory without one only reads. */
  readonly identity?: Identity
  /** Signs this person's entry (`keySigner`): readers and malla routers drop entries their key did not sign. */
  readonly sign?: (type: string, key: string, data: { readonly [k: string]: Json }) => Json
}

/**
 * A room's key directory: each person's public key and display name under their fingerprint, signed by that key
 * (the replica's admission, room-admission.ts, drops anything else on arrival). What the app shows as a
 * person's identity, and where a sender finds the key to encrypt a message to someone who is away.
 */
export class KeyDirectory {
  private timer: ReturnType<typeof setInterval> | undefined
  private name: string | undefined

  constructor(private readonly options: KeyDirectoryOptions) {}

  /** Publishes this person's entry with `name`, and keeps it fresh while the room is joined. */
  async publish(name: string | undefined): Promise<void> {
    const { identity, sign } = this.options
    if (!identity || !sign) return
    this.name = name
    const data: { [k: string]: Json } = { v: 1, pk: toBase64Url(identity.publicKeyBytes), ...(name !== undefined ? { n: name } : {}) }
    await writeOwn(this.options.replica, this.options.type, [[identity.fingerprint, sign(this.options.type, identity.fingerprint, data)]], KEY_TTL)
    if (!this.timer) {
      this.timer = setInterval(() => void this.publish(this.name), REPUBLISH_MS)
      ;(this.timer as { unref?: () => void }).unref?.()
    }
  }

  /** The entry of `fingerprint`, if the room has one. */
  async get(fingerprint: string): Promise<DirectoryEntry | undefined> {
    const entry = (await this.table()).get(fingerprint)
    return entry ? readEntry(fingerprint, entry) : undefined
  }

  /** Every entry the room has. */
  async list(): Promise<DirectoryEntry[]> {
    const out: DirectoryEntry[] = []
    for (const [fingerprint, entry] of await this.table()) {
      const read = readEntry(fingerprint, entry)
      if (read) out.push(read)
    }
    return out
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private async table(): Promise<ReadonlyMap<string, Entry>> {
    return (await this.options.replica.read({ flavour: 'ttl', type: this.options.type })).table as ReadonlyMap<string, Entry>
  }
}

/** An entry as the admission let it in (signed by the key it names), read defensively all the same. */
function readEntry(fingerprint: string, entry: Entry): DirectoryEntry | undefined {
  const data = entry.data as { pk?: unknown; n?: unknown } | null
  if (!FINGERPRINT_PATTERN.test(fingerprint) || data === null || typeof data !== 'object' || typeof data.pk !== 'string' || data.pk.length > MAX_PUBLIC_KEY_CHARS) return undefined
  try {
    return { fingerprint, name: displayName(data.n), publicKey: fromBase64Url(data.pk) }
  } catch {
    return undefined
  }
}
