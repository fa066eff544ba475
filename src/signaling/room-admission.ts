import { fromBase64Url } from '../core/base64url.js'
import type { Admission } from '../replica/replica.js'
import { equal, firstPacket, TAG, type Ed25519PublicKey } from '../identity/pgp-packets.js'
import { FINGERPRINT_PATTERN, MAX_PUBLIC_KEY_CHARS } from '../overlay/key-directory.js'
import { isWaiting, MAIL_KEY_PATTERN, MAIL_PER_SENDER, MAX_MAIL_CHARS, MAX_MAIL_TTL, waitingSender } from '../overlay/private-messages.js'
import { isKeyBound, keyPeer } from './signal-records.js'
import { checkKeyRecord, checkRecord, signerFingerprint, type RecordCheck, type RecordChecker } from './signed-records.js'

/** Verified records remembered, at most: each is checked once however often the mesh sends it again. */
const REMEMBERED = 4096
/**
 * Live records (not withdrawals) of one person's key in one table of a room, at most: many tabs' worth of
 * offers and answers, and presence for as many sessions. More is someone filling the table (decoys) with one
 * key, and is dropped on arrival. Keys are cheap to make: this bounds each, not everyone.
 */
export const PER_KEY_QUOTA = { offers: 32, answers: 64, presence: 16 } as const

/** The room tables whose entries a replica checks on arrival. */
export type CheckedTable = 'offers' | 'answers' | 'presence' | 'keys' | 'mail'
const SUFFIXES: ReadonlyArray<readonly [string, CheckedTable]> = [
  ['-_offers', 'offers'],
  ['-_answers', 'answers'],
  ['-_presence', 'presence'],
  ['-_keys', 'keys'],
  ['-_mail', 'mail'],
]

/**
 * What a replica admits of a room's own tables (`Replica`'s `admit`, §18.2-18.4), so that a page or a malla
 * router neither keeps nor relays a forgery, and cannot be made to forget the real record by a copy with a
 * higher TTL:
 * - signaling and presence: an entry whose key names a key-bound peer id must be written by that peer and
 *   signed by its key (a null, a taken mark, an offer under its id by anyone else is dropped);
 * - the key directory: an entry is the key its fingerprint names, signed by that key;
 * - mail: a message signed by its sender, a removal by its recipient only, within the size, TTL and the
 *   sender's quota of messages waiting.
 * Entries of peers without a key-bound id, and every other table, pass untouched: LibreMesh types stay as
 * LibreMesh has them. A plain Lua router does no such check: it keeps whichever copy has the higher TTL.
 * `onRefused` hears of each refused copy once. `check` is shared with the tables' reads in a page
 * (`rememberingChecker`), so that each record is verified once. Each signature verified (not one remembered)
 * is charged to the merge's sender (`chargeChecks`); once it cannot pay, the rest of what it sent is dropped
 * unread, neither admitted nor counted as refused: it comes again with a later sync.
 */
export function roomAdmission(onRefused?: (table: CheckedTable) => void, check: RecordChecker = rememberingChecker()): Admission {
  // Refused copies already reported: a router re-sends its table at every poll, and each forgery counts once.
  const reported = new Set<string>()
  const refuse = (table: CheckedTable, type: string, key: string, entry: object): void => {
    const id = `${type}\u0000${key}\u0000${JSON.stringify(entry)}`
    if (reported.has(id)) return
    if (reported.size >= REMEMBERED) reported.clear()
    reported.add(id)
    onRefused?.(table)
  }
  const known = new Remembered<Ed25519PublicKey>()
  const rememberedCheck = (check as Partial<RememberingChecker>).known
  return (ref, remote, current, chargeChecks) => {
    const table = ref.flavour === 'ttl' && ref.type.startsWith('room-') ? SUFFIXES.find(([suffix]) => ref.type.endsWith(suffix))?.[1] : undefined
    if (!table) return remote
    const admitted = new Map<string, object>()
    let solvent = true
    // Whether a signature may be verified: one remembered is free; the others are charged while the sender can pay.
    const pay = (free: boolean): boolean => {
      if (free || !chargeChecks) return true
      if (!solvent) return false
      try {
        chargeChecks(1)
      } catch {
        solvent = false
      }
      return solvent
    }
    const checks: Checks = {
      // A record remembered as valid is taken as it is; any other is verified, once its sender has paid.
      peer: (type, key, peer, data) => (rememberedCheck?.(type, key, peer, data) ? true : pay(false) ? attempt(() => check(type, key, peer, data)) : 'later'),
      person: (type, key, fingerprints, data) => {
        const id = signatureId(data, type, key)
        const remembered = known.get(id, data)
        if (remembered !== undefined) return remembered
        if (!pay(false)) return 'later'
        const signer = attemptValue(() => checkKeyRecord(type, key, fingerprints, data))
        if (signer !== undefined) known.add(id, data, signer)
        return signer ?? false
      },
    }
    // Quotas count what the table holds and what this batch adds.
    const quota = table === 'mail' ? new Quota(current, waitingSender) : table === 'keys' ? undefined : new Quota(current, signerOf)
    for (const [key, entry] of remote) {
      const verdict = table === 'keys' ? admitsKey(ref.type, key, entry, checks) : table === 'mail' ? admitsMail(ref.type, key, entry, current.get(key), quota as Quota, checks) : admitsPeerRecord(table, ref.type, key, entry, current.get(key), quota as Quota, checks)
      if (verdict === true) admitted.set(key, entry)
      else if (verdict === false) refuse(table, ref.type, key, entry)
    }
    return admitted
  }
}

/** A verdict: admitted, refused, or not looked at now (its sender could not pay for the check). */
type Verdict = boolean | 'later'

interface Checks {
  peer(type: string, key: string, peer: string, data: object): Verdict
  /** The signer's key when `data` is signed by one of `fingerprints`; false when not; 'later' when unpaid. */
  person(type: string, key: string, fingerprints: readonly string[], data: object): Ed25519PublicKey | false | 'later'
}

function admitsPeerRecord(table: 'offers' | 'answers' | 'presence', type: string, key: string, entry: object, before: object | undefined, quota: Quota, checks: Checks): Verdict {
  const peer = table === 'presence' ? key : keyPeer(table, key)
  if (!isKeyBound(peer)) return true
  const { data, author } = entry as { data?: unknown; author?: unknown }
  if (author !== peer || data === null || typeof data !== 'object' || !('pgp' in data)) return false
  // A new live record over its key's quota is refused; one replacing a record the table holds is not new.
  const signer = signerOf(key, entry)
  const adds = signer !== undefined && isLive(data) && signerOf(key, before) !== signer
  if (adds && quota.count(signer) >= PER_KEY_QUOTA[table]) return false
  const verdict = checks.peer(type, key, peer, data)
  if (verdict === true && adds) quota.add(signer)
  return verdict
}

/** A directory entry: the key under its own fingerprint (its first packet is the key that signed), signed. */
function admitsKey(type: string, key: string, entry: object, checks: Checks): Verdict {
  const { data } = entry as { data?: unknown }
  if (!FINGERPRINT_PATTERN.test(key) || data === null || typeof data !== 'object' || Array.isArray(data)) return false
  const pk = (data as { pk?: unknown }).pk
  if (typeof pk !== 'string' || pk.length > MAX_PUBLIC_KEY_CHARS) return false
  const signer = checks.person(type, key, [key], data)
  if (signer === false || signer === 'later') return signer
  return attempt(() => {
    const first = firstPacket(fromBase64Url(pk))
    if (first.tag !== TAG.publicKey || !equal(first.body, signer.packetBody)) throw new Error('not the key that signed')
  })
}

/** A waiting message signed by its sender, or a removal signed by its recipient; within size, TTL and quota. */
function admitsMail(type: string, key: string, entry: object, before: object | undefined, quota: Quota, checks: Checks): Verdict {
  const m = MAIL_KEY_PATTERN.exec(key)
  const { data, bleachTTL } = entry as { data?: unknown; bleachTTL?: unknown }
  if (!m || data === null || typeof data !== 'object' || Array.isArray(data) || typeof bleachTTL !== 'number' || bleachTTL > MAX_MAIL_TTL) return false
  const [, to, from] = m as unknown as [string, string, string]
  const d = data as { m?: unknown; gone?: unknown }
  if (d.gone === true) return verdictOf(checks.person(type, key, [to], data))
  if (typeof d.m !== 'string' || d.m.length > MAX_MAIL_CHARS) return false
  // A new message over its sender's quota is refused; a copy of one the table holds replaces it as ever.
  const isNew = !isWaiting((before as { data?: unknown } | undefined)?.data)
  if (isNew && quota.count(from) >= MAIL_PER_SENDER) return false
  const verdict = verdictOf(checks.person(type, key, [from], data))
  if (verdict === true && isNew) quota.add(from)
  return verdict
}

function verdictOf(signer: Ed25519PublicKey | false | 'later'): Verdict {
  return signer === false || signer === 'later' ? signer : true
}

/**
 * Live records per author (a key's fingerprint, a message's sender), counted once per batch from the table the
 * replica holds, then kept up to date as the batch is admitted.
 */
class Quota {
  private counts: Map<string, number> | undefined
  constructor(
    private readonly current: ReadonlyMap<string, object>,
    private readonly authorOf: (key: string, entry: object | undefined) => string | undefined,
  ) {}
  count(author: string): number {
    if (!this.counts) {
      this.counts = new Map()
      for (const [key, entry] of this.current) {
        const who = this.authorOf(key, entry)
        if (who !== undefined) this.counts.set(who, (this.counts.get(who) ?? 0) + 1)
      }
    }
    return this.counts.get(author) ?? 0
  }
  add(author: string): void {
    this.counts?.set(author, this.count(author) + 1)
  }
}

/** The fingerprint that signed a live record (as its `pgp.k` says: the admission checked it on arrival). */
function signerOf(_key: string, entry: object | undefined): string | undefined {
  const data = (entry as { data?: unknown } | undefined)?.data
  return isLive(data) ? signerFingerprint(data) : undefined
}

function isLive(data: unknown): boolean {
  return data !== null && typeof data === 'object' && (data as { gone?: unknown }).gone !== true
}

/**
 * Checks that held, the last 4,096, by what the signature covers (table, key, signer) and the signature itself,
 * each with the value it was made on: the same value again is answered from memory; any other, or the same
 * signature under another key, is checked anew.
 */
class Remembered<R> {
  private readonly valid = new Map<string, { readonly json: string; readonly result: R }>()
  get(id: string | undefined, data: unknown): R | undefined {
    const known = id === undefined ? undefined : this.valid.get(id)
    return known !== undefined && known.json === JSON.stringify(data) ? known.result : undefined
  }
  add(id: string | undefined, data: unknown, result: R): void {
    if (id === undefined) return
    if (this.valid.size >= REMEMBERED) this.valid.delete(this.valid.keys().next().value as string)
    this.valid.set(id, { json: JSON.stringify(data), result })
  }
}

/** What a signed record's check is remembered by: `parts` and its signature; undefined for an unsigned one. */
function signatureId(data: unknown, ...parts: string[]): string | undefined {
  const sig = (data as { pgp?: { sig?: unknown } } | null)?.pgp?.sig
  return typeof sig === 'string' ? [...parts, sig].join('\u0000') : undefined
}

function attemptValue<T>(f: () => T): T | undefined {
  try {
    return f()
  } catch {
    return undefined
  }
}

function attempt(f: () => unknown): boolean {
  try {
    f()
    return true
  } catch {
    return false
  }
}

/** A checker that remembers, and says whether it would answer a record from memory (no signature verified). */
export type RememberingChecker = RecordChecker & { known(type: string, key: string, peer: string, data: unknown): boolean }

/**
 * `checkRecord`, remembering the records it found valid (the last 4,096, by table, key and signature, with the
 * value checked): a page checks each record when it arrives and again when it reads the tables, and a router
 * gets the same table again at every sync. The key is part of what is remembered, since a signature covers its
 * key: the same signed value under another key is checked anew, and fails.
 */
export function rememberingChecker(): RememberingChecker {
  const valid = new Remembered<RecordCheck>()
  const check = (type: string, key: string, peer: string, data: unknown): RecordCheck => {
    const id = signatureId(data, type, key, peer)
    const known = valid.get(id, data)
    if (known !== undefined) return known
    const result = checkRecord(type, key, peer, data)
    valid.add(id, data, result)
    return result
  }
  return Object.assign(check, { known: (type: string, key: string, peer: string, data: unknown) => valid.get(signatureId(data, type, key, peer), data) !== undefined })
}
