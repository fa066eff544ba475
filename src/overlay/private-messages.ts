import { createNanoEvents, type Emitter, type Unsubscribe } from 'nanoevents'
import { badInput, MallaError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import type { Entry, Json, TypeName } from '../core/types.js'
import type { Identity, PublicIdentity } from '../identity/identity.js'
import type { Replica } from '../replica/replica.js'
import { writeOwn } from '../replica/own-writes.js'
import type { KeyDirectory } from './key-directory.js'

/** A room's messages that wait for someone away (docs/protocol.md §18.4). */
export const MAIL_TABLE = '_mail'
/** `<recipient's fingerprint>.<sender's fingerprint>.<message id>`. */
export const MAIL_KEY_PATTERN = /^([0-9A-F]{40})\.([0-9A-F]{40})\.([a-z0-9]{1,16})$/
/** The armored message of one waiting entry, at most: a few KB of text, encrypted and signed. */
export const MAX_MAIL_CHARS = 8192
/** Messages of one sender waiting in a room at once, at most; a router and a page drop the rest on arrival. */
export const MAIL_PER_SENDER = 16
/** About a day on malla daemons (120 s bleach rounds); a removal lives as long, so that no copy comes back. */
export const MAIL_TTL = 720
/** A TTL above this is refused: one entry must not outlive the others by being written with a huge one. */
export const MAX_MAIL_TTL = 2 * MAIL_TTL
/** Public keys read, remembered by fingerprint. */
const KEYS_REMEMBERED = 256
/** Waiting messages opened per `waiting()` call, at most. */
export const MAX_OPENED_PER_READ = 8
/** Waiting messages whose reading is remembered, at most. */
const MAX_READ_REMEMBERED = 1024

/** A message to this person, read from the table: decrypted, its signature checked against its sender's key. */
export interface WaitingMessage {
  readonly key: string
  /** The sender's fingerprint, and the name their directory entry gives. */
  readonly from: string
  readonly fromName: string | undefined
  readonly id: string
  readonly text: string
  /** When the sender wrote it (Unix ms), as the sender's signature dates it. */
  readonly at: number
}

export interface PrivateMessagesEvents {
  /** Messages for this person arrived in the table (read them with `waiting()`). */
  mail(): void
  /** The recipient of a message this person left removed it: they read it. */
  read(key: string): void
}

export interface PrivateMessagesOptions {
  readonly replica: Replica
  /** The room's mail type (`roomOwnType(room, MAIL_TABLE)`). */
  readonly type: TypeName
  readonly identity: Identity
  readonly directory: KeyDirectory
  /** Signs this person's records (`keySigner`). */
  readonly sign: (type: string, key: string, data: { readonly [k: string]: Json }) => Json
  readonly log?: Logger
}

/**
 * Messages between people of a room, encrypted to the recipient's key and signed by the sender's (OpenPGP:
 * `gpg --decrypt` reads them): sealed for a direct message that travels live, or written to the room's mail
 * table for someone who is away, where it waits, bounded in size, number per sender and lifetime, until the
 * recipient reads it and removes it by a signed removal.
 */
export class PrivateMessages {
  private readonly emitter: Emitter<PrivateMessagesEvents> = createNanoEvents<PrivateMessagesEvents>()
  private readonly keys = new Map<string, Promise<PublicIdentity>>()
  /** Messages opened, by key and signature: what each gave (null: it did not open). */
  private readonly read = new Map<string, WaitingMessage | null>()
  private readonly off: Unsubscribe
  private readonly log: Logger

  constructor(private readonly options: PrivateMessagesOptions) {
    this.log = options.log ?? silentLogger
    const me = options.identity.fingerprint
    this.off = options.replica.on('change', (e) => {
      if (e.type !== options.type) return
      let mail = false
      for (const key of e.keys) {
        const [, to, from] = MAIL_KEY_PATTERN.exec(key) ?? []
        if (to === me) mail = true
        else if (from === me && isRemoval((e.table.get(key) as { data?: unknown } | undefined)?.data)) this.emitter.emit('read', key)
      }
      if (mail) this.emitter.emit('mail')
    })
  }

  on<E extends keyof PrivateMessagesEvents>(event: E, callback: PrivateMessagesEvents[E]): Unsubscribe {
    return this.emitter.on(event, callback)
  }

  /** `text` encrypted to `to` (a fingerprint in the room's directory) and signed. Rejects with PEER when the room has no key for `to`. */
  async seal(to: string, text: string): Promise<string> {
    return this.options.identity.encrypt(text, await this.keyOf(to))
  }

  /** The text of a sealed message from `from` (a fingerprint); throws BAD_INPUT for one that is not, PEER when `from` has no key here. */
  async open(armored: string, from: string): Promise<{ readonly text: string; readonly signed: Date }> {
    return this.options.identity.decrypt(armored, await this.keyOf(from))
  }

  /** Leaves `text` for `to`, who reads it when back in the room. `id`: 1-16 of [a-z0-9], unique among this sender's messages to `to`. */
  async post(to: string, id: string, text: string): Promise<void> {
    const key = `${to}.${this.options.identity.fingerprint}.${id}`
    if (!MAIL_KEY_PATTERN.test(key)) throw badInput(`cannot leave a message under ${key}`)
    const m = await this.seal(to, text)
    if (m.length > MAX_MAIL_CHARS) throw badInput(`the message is too long to wait in the table (${m.length} of ${MAX_MAIL_CHARS} characters encrypted)`)
    if (waitingFrom(await this.table(), this.options.identity.fingerprint) >= MAIL_PER_SENDER) throw new MallaError('BUSY', `${MAIL_PER_SENDER} of this person's messages already wait in the room`)
    await writeOwn(this.options.replica, this.options.type, [[key, this.options.sign(this.options.type, key, { v: 1, m })]], MAIL_TTL)
  }

  /**
   * Messages waiting for this person, oldest first; those that do not decrypt or check are skipped (and
   * logged). Each message is opened once (what it gave is remembered), and at most `MAX_OPENED_PER_READ` new ones
   * a call: opening costs tens of ms in a page, and anyone with keys to spare can leave messages. `more` says
   * that some were left for the next call.
   */
  async waiting(): Promise<{ readonly messages: WaitingMessage[]; readonly more: boolean }> {
    const messages: WaitingMessage[] = []
    let opened = 0
    let more = false
    for (const [key, entry] of await this.table()) {
      const m = MAIL_KEY_PATTERN.exec(key)
      const data = entry.data as { m?: unknown } | null
      if (!m || m[1] !== this.options.identity.fingerprint || data === null || typeof data !== 'object' || typeof data.m !== 'string') continue
      // The record's signature covers its whole value (the admission checked it): one per message written.
      const id = `${key}\u0000${String((data as { pgp?: { sig?: unknown } }).pgp?.sig)}\u0000${data.m.length}`
      let read = this.read.get(id)
      if (read === undefined) {
        if (opened >= MAX_OPENED_PER_READ) {
          more = true
          continue
        }
        opened++
        const outcome = await this.openWaiting(key, m[2] as string, m[3] as string, data.m)
        if (outcome === 'later') continue
        read = outcome
        if (this.read.size >= MAX_READ_REMEMBERED) this.read.delete(this.read.keys().next().value as string)
        this.read.set(id, read)
      }
      if (read) messages.push(read)
    }
    return { messages: messages.sort((a, b) => a.at - b.at), more }
  }

  /** The message, null when it does not open, 'later' when its sender's key is not in the directory yet. */
  private async openWaiting(key: string, from: string, id: string, armored: string): Promise<WaitingMessage | null | 'later'> {
    try {
      const { text, signed } = await this.open(armored, from)
      const sender = await this.options.directory.get(from)
      return { key, from, fromName: sender?.name, id, text, at: signed.getTime() }
    } catch (e) {
      this.log.debug('skipped a waiting message', { key, error: (e as Error).message })
      // A key not in the directory yet may come with the next sync: not remembered as unreadable.
      return (e as { code?: string }).code === 'PEER' ? 'later' : null
    }
  }

  /** Removes a message to this person, read (a signed removal: nobody else, its sender included, can remove it), so that it is not delivered again. */
  async remove(key: string): Promise<void> {
    const m = MAIL_KEY_PATTERN.exec(key)
    if (!m || m[1] !== this.options.identity.fingerprint) throw badInput(`${key} is not a message to this person`)
    await writeOwn(this.options.replica, this.options.type, [[key, this.options.sign(this.options.type, key, { v: 1, gone: true })]], MAIL_TTL)
  }

  stop(): void {
    this.off()
  }

  /** `fingerprint`'s public key, from the room's directory. */
  private keyOf(fingerprint: string): Promise<PublicIdentity> {
    let known = this.keys.get(fingerprint)
    if (!known) {
      known = this.options.directory.get(fingerprint).then((entry) => {
        if (!entry) throw new MallaError('PEER', `no key of ${fingerprint} in the room's directory`)
        return this.options.identity.readKey(entry.publicKey).then((key) => {
          if (key.fingerprint !== fingerprint) throw badInput(`the directory's key under ${fingerprint} is another's`)
          return key
        })
      })
      // A failure is not remembered: the key may arrive with the next sync.
      known.catch(() => this.keys.delete(fingerprint))
      if (this.keys.size >= KEYS_REMEMBERED) this.keys.delete(this.keys.keys().next().value as string)
      this.keys.set(fingerprint, known)
    }
    return known
  }

  private async table(): Promise<ReadonlyMap<string, Entry>> {
    return (await this.options.replica.read({ flavour: 'ttl', type: this.options.type })).table as ReadonlyMap<string, Entry>
  }
}

/** Messages of `sender` (a fingerprint) waiting in a mail table: entries under its name that are not removals. */
export function waitingFrom(table: ReadonlyMap<string, object>, sender: string): number {
  let n = 0
  for (const [key, entry] of table) if (waitingSender(key, entry) === sender) n++
  return n
}

/** The sender of the message an entry of a mail table holds, when it holds one (not a removal, nor nothing). */
export function waitingSender(key: string, entry: object | undefined): string | undefined {
  return isWaiting((entry as { data?: unknown } | undefined)?.data) ? MAIL_KEY_PATTERN.exec(key)?.[2] : undefined
}

function isRemoval(data: unknown): boolean {
  return data !== null && typeof data === 'object' && (data as { gone?: unknown }).gone === true
}

/** Whether an entry's data is a message (not a removal, nor nothing). */
export function isWaiting(data: unknown): boolean {
  return data !== null && typeof data === 'object' && typeof (data as { m?: unknown }).m === 'string'
}
