import { signal } from '@preact/signals'
import type { Room } from 'malla/browser'

export interface DirectMessage {
  readonly id: string
  readonly from: string
  readonly text: string
  readonly at: number
  readonly mine: boolean
  /**
   * Sent: waiting for the other side's acknowledgement, acknowledged, failed, or left in the room for someone
   * away (`waiting`, then `read` once they removed it). Received: `received`.
   */
  readonly state: 'pending' | 'delivered' | 'failed' | 'waiting' | 'read' | 'received'
  /** Encrypted to its recipient and signed by its sender's key (checked on arrival). */
  readonly sealed: boolean
}

/** Who the conversations are with, as far as this module needs: names and the fingerprints of their keys. */
export interface PeopleLookup {
  nameOf(id: string): string
  fingerprintOf(id: string): string | undefined
  others(): ReadonlyArray<{ readonly id: string; readonly fingerprint: string | undefined }>
  /** Calls `listener` whenever who is present changes; returns the unsubscribe. */
  watch?(listener: () => void): () => void
}

const MAX_TEXT = 4000
const KEPT_PER_PERSON = 200
const MAX_CONVERSATIONS = 64
/** Messages decrypted at once, at most (each is tens of ms in a page without WebCrypto); more are dropped. */
const MAX_OPENING = 16
/** Messages read from the room's mail table, remembered so that each shows once. */
const MAX_SEEN_MAIL = 1024
const FINGERPRINT = /^[0-9A-F]{40}$/
/** When more mail waits than one read opens, the next read comes this much later. */
const COLLECT_AGAIN_MS = 2000

/**
 * Messages to one person. To someone with a key (everyone the app connects to), each message is encrypted to
 * their key and signed (`room.privateMessages`), and travels as a routed message of the room (`room.send`): over
 * a direct connection when there is one, else relayed by the peers between, who cannot read it. To someone who
 * is away, it is left in the room's mail table, and waits there until they come back and read it. A
 * conversation is keyed by the person's peer id, or by their fingerprint when they wrote while this page knew
 * no session of theirs. Nothing else is kept: the conversations live in this page.
 */
export class DirectMessages {
  readonly conversations = signal<ReadonlyMap<string, readonly DirectMessage[]>>(new Map())
  readonly unread = signal<ReadonlyMap<string, number>>(new Map())
  name: string
  private open: string | undefined
  private counter = 0
  private opening = 0
  /** For each conversation, the fingerprint of the person's key, as learnt from presence or mail. */
  private readonly fingerprints = new Map<string, string>()
  private readonly names = new Map<string, string>()
  /** Mail read into a conversation, removed from the table once the conversation is opened. */
  private readonly unremoved = new Map<string, string[]>()
  private readonly seenMail = new Set<string>()
  /** Mail keys this page left, and the message each is. */
  private readonly left = new Map<string, { readonly peer: string; readonly id: string }>()
  private readonly offs: Array<() => void> = []
  private readonly movedTo = new Map<string, string>()
  private collecting = false
  private collectAgain = false
  private later: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly room: Room, name: string, private readonly people: PeopleLookup) {
    this.name = name
    if (people.watch) this.offs.push(people.watch(() => this.adopt()))
    const mail = room.privateMessages
    if (mail) {
      this.offs.push(
        mail.on('mail', () => this.collectSoon()),
        mail.on('read', (key) => {
          const sent = this.left.get(key)
          if (sent) this.update(sent.peer, sent.id, 'read')
        }),
      )
      this.collectSoon()
    }
  }

  /** The conversation on screen: its messages are read (and mail read is removed from the room's table). */
  setOpen(peer: string | undefined): void {
    this.open = peer
    if (peer === undefined) return
    this.remember(peer)
    if (this.unread.value.has(peer)) {
      const next = new Map(this.unread.value)
      next.delete(peer)
      this.unread.value = next
    }
    const keys = this.unremoved.get(peer)
    this.unremoved.delete(peer)
    for (const key of keys ?? []) void this.room.privateMessages?.remove(key).catch(() => {})
  }

  /** Who `peer` is, kept while the conversation is: they may leave, and a message then waits for them. */
  private remember(peer: string): void {
    const fingerprint = this.people.fingerprintOf(peer)
    if (fingerprint === undefined) return
    this.fingerprints.set(peer, fingerprint)
    this.names.set(peer, this.people.nameOf(peer))
    // Bounded like the conversations: a person opened and never written to leaves little behind.
    for (const map of [this.fingerprints, this.names]) while (map.size > MAX_CONVERSATIONS * 2) map.delete(map.keys().next().value as string)
  }

  nameOf(id: string): string {
    return this.names.get(id) ?? this.people.nameOf(id)
  }

  async send(to: string, text: string): Promise<void> {
    const trimmed = text.trim().slice(0, MAX_TEXT)
    if (trimmed === '') return
    const id = `${Date.now().toString(36)}${(this.counter++).toString(36)}`.slice(-16)
    const mail = this.room.privateMessages
    const fingerprint = this.people.fingerprintOf(to) ?? this.fingerprints.get(to) ?? (FINGERPRINT.test(to) ? to : undefined)
    this.add(to, { id, from: this.room.id, text: trimmed, at: Date.now(), mine: true, state: 'pending', sealed: fingerprint !== undefined })
    if (!mail || fingerprint === undefined) {
      // Someone without a key (a peer joined without an identity): as before keys, in clear.
      const state = await this.room.send(to, { t: 'dm', id, x: trimmed, n: this.name }).then(
        () => 'delivered' as const,
        () => 'failed' as const,
      )
      return this.update(to, id, state)
    }
    this.remember(to)
    const present = this.people.others().some((p) => p.id === to)
    let state: DirectMessage['state'] = 'failed'
    try {
      if (present) {
        const e = await mail.seal(fingerprint, trimmed)
        state = await this.room.send(to, { t: 'dm', id, e }).then(() => 'delivered' as const, () => 'failed' as const)
      }
      if (state === 'failed') {
        // Away, or gone since: the message waits for them in the room.
        await mail.post(fingerprint, id, trimmed)
        if (this.left.size >= MAX_SEEN_MAIL) this.left.delete(this.left.keys().next().value as string)
        this.left.set(`${fingerprint}.${this.room.identity?.fingerprint}.${id}`, { peer: to, id })
        state = 'waiting'
      }
    } catch {
      state = 'failed'
    }
    this.update(to, id, state)
  }

  /** A routed message from `from`: a sealed one is opened with the key their presence is signed by. */
  receive(from: string, body: { readonly [k: string]: unknown }): void {
    if (body.t !== 'dm' || typeof body.id !== 'string') return
    const id = body.id.slice(0, 40)
    if ((this.conversations.value.get(from) ?? []).some((m) => !m.mine && m.id === id)) return
    const fingerprint = this.people.fingerprintOf(from)
    if (typeof body.e === 'string') {
      const mail = this.room.privateMessages
      if (!mail || fingerprint === undefined || this.opening >= MAX_OPENING) return
      this.opening++
      void mail
        .open(body.e, fingerprint)
        .then(
          ({ text, signed }) => this.arrived(from, { id, from, text: text.slice(0, MAX_TEXT), at: Math.min(signed.getTime(), Date.now()), mine: false, state: 'received', sealed: true }),
          () => {},
        )
        .finally(() => this.opening--)
      return
    }
    // In clear only from someone without a key: a sender with one always seals, so a clear message under their
    // id is someone else's (a routed message's sender id is a claim).
    if (typeof body.x !== 'string' || fingerprint !== undefined) return
    this.arrived(from, { id, from, text: body.x.slice(0, MAX_TEXT), at: Date.now(), mine: false, state: 'received', sealed: false })
  }

  totalUnread(): number {
    let n = 0
    for (const v of this.unread.value.values()) n += v
    return n
  }

  stop(): void {
    for (const off of this.offs.splice(0)) off()
    clearTimeout(this.later)
  }

  /**
   * A conversation kept under a fingerprint (mail from someone this page knew no session of) moves to that
   * person's session once it shows up, so that one person is one conversation.
   */
  private adopt(): void {
    for (const key of this.conversations.value.keys()) {
      if (!FINGERPRINT.test(key)) continue
      const peer = this.people.others().find((p) => p.fingerprint === key)?.id
      if (peer === undefined) continue
      const moved = this.conversations.value.get(key) ?? []
      const next = new Map(this.conversations.value)
      next.delete(key)
      next.set(peer, [...(next.get(peer) ?? []), ...moved.map((m) => ({ ...m, from: m.mine ? m.from : peer }))].sort((a, b) => a.at - b.at).slice(-KEPT_PER_PERSON))
      this.conversations.value = next
      const unread = this.unread.value.get(key)
      if (unread !== undefined) {
        const counts = new Map(this.unread.value)
        counts.delete(key)
        counts.set(peer, (counts.get(peer) ?? 0) + unread)
        this.unread.value = counts
      }
      this.unremoved.set(peer, [...(this.unremoved.get(peer) ?? []), ...(this.unremoved.get(key) ?? [])])
      this.unremoved.delete(key)
      this.fingerprints.set(peer, key)
      if (this.movedTo.size >= MAX_CONVERSATIONS) this.movedTo.delete(this.movedTo.keys().next().value as string)
      this.movedTo.set(key, peer)
      if (this.open === key) this.setOpen(peer)
    }
  }

  /** Where a conversation is now: one kept under a fingerprint moves to the person's session when it shows up. */
  current(id: string): string {
    return this.movedTo.get(id) ?? id
  }

  /**
   * `collect`, one at a time: mail arriving during a read is read right after it. A failure (the table
   * unreadable) waits for the next mail rather than breaking the page.
   */
  private collectSoon(): void {
    if (this.collecting) {
      this.collectAgain = true
      return
    }
    this.collecting = true
    void this.collect()
      .catch(() => {})
      .finally(() => {
        this.collecting = false
        if (this.collectAgain) {
          this.collectAgain = false
          this.collectSoon()
        }
      })
  }

  /** Reads the mail waiting for this person into conversations: with the sender's session here, or their fingerprint. */
  private async collect(): Promise<void> {
    const mail = this.room.privateMessages
    if (!mail) return
    const { messages, more } = await mail.waiting()
    // More than a read opens at once (each costs tens of ms): the rest a little later, not all in one go.
    if (more) this.later ??= setTimeout(() => ((this.later = undefined), this.collectSoon()), COLLECT_AGAIN_MS)
    for (const w of messages) {
      if (this.seenMail.has(w.key)) continue
      if (this.seenMail.size >= MAX_SEEN_MAIL) this.seenMail.delete(this.seenMail.values().next().value as string)
      this.seenMail.add(w.key)
      const peer = this.people.others().find((p) => p.fingerprint === w.from)?.id ?? w.from
      this.fingerprints.set(peer, w.from)
      if (w.fromName !== undefined && peer === w.from) this.names.set(peer, w.fromName)
      this.unremoved.set(peer, [...(this.unremoved.get(peer) ?? []), w.key].slice(-KEPT_PER_PERSON))
      this.arrived(peer, { id: w.id, from: peer, text: w.text.slice(0, MAX_TEXT), at: w.at, mine: false, state: 'received', sealed: true })
    }
    if (this.open !== undefined) this.setOpen(this.open)
  }

  private arrived(from: string, message: DirectMessage): void {
    if ((this.conversations.value.get(from) ?? []).some((m) => !m.mine && m.id === message.id)) return
    this.add(from, message)
    if (this.open !== from) {
      // Counts only for the conversations kept: one stranger can make up many senders.
      const next = new Map([...this.unread.value].filter(([peer]) => this.conversations.value.has(peer)))
      next.set(from, (next.get(from) ?? 0) + 1)
      this.unread.value = next
    }
  }

  private add(peer: string, message: DirectMessage): void {
    const next = new Map(this.conversations.value)
    const before = next.get(peer) ?? []
    // Re-inserted, so the map's order is the order of last activity; within one, the order of writing.
    next.delete(peer)
    next.set(peer, [...before, message].sort((a, b) => a.at - b.at).slice(-KEPT_PER_PERSON))
    // The least recently active conversations go first; a stranger opening many costs a bounded list.
    while (next.size > MAX_CONVERSATIONS) {
      const oldest = next.keys().next().value as string
      next.delete(oldest)
      this.fingerprints.delete(oldest)
      this.names.delete(oldest)
      this.unremoved.delete(oldest)
    }
    this.conversations.value = next
  }

  private update(peer: string, id: string, state: DirectMessage['state']): void {
    const list = this.conversations.value.get(peer)
    if (!list) return
    const next = new Map(this.conversations.value)
    next.set(peer, list.map((m) => (m.mine && m.id === id ? { ...m, state } : m)))
    this.conversations.value = next
  }
}
