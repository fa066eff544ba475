import { signal } from '@preact/signals'
import type { Room } from 'malla/browser'

export interface DirectMessage {
  readonly id: string
  readonly from: string
  readonly text: string
  readonly at: number
  readonly mine: boolean
  /** For this page's messages: whether the other side acknowledged it. */
  readonly state: 'pending' | 'delivered' | 'failed' | 'received'
}

const MAX_TEXT = 4000
const KEPT_PER_PERSON = 200
const MAX_CONVERSATIONS = 64

/**
 * Messages to one person, as routed messages of the room (`room.send`): over a direct connection when there
 * is one, else relayed by the peers between. They live in this page only: nothing is written to any table.
 */
export class DirectMessages {
  readonly conversations = signal<ReadonlyMap<string, readonly DirectMessage[]>>(new Map())
  readonly unread = signal<ReadonlyMap<string, number>>(new Map())
  name: string
  private open: string | undefined
  private counter = 0

  constructor(private readonly room: Room, name: string) {
    this.name = name
  }

  /** The conversation on screen: its messages are read. */
  setOpen(peer: string | undefined): void {
    this.open = peer
    if (peer !== undefined && this.unread.value.has(peer)) {
      const next = new Map(this.unread.value)
      next.delete(peer)
      this.unread.value = next
    }
  }

  async send(to: string, text: string): Promise<void> {
    const trimmed = text.trim().slice(0, MAX_TEXT)
    if (trimmed === '') return
    const id = `${Date.now().toString(36)}.${(this.counter++).toString(36)}`
    this.add(to, { id, from: this.room.id, text: trimmed, at: Date.now(), mine: true, state: 'pending' })
    const state = await this.room.send(to, { t: 'dm', id, x: trimmed, n: this.name }).then(
      () => 'delivered' as const,
      () => 'failed' as const,
    )
    this.update(to, id, state)
  }

  receive(from: string, body: { readonly [k: string]: unknown }): void {
    if (body.t !== 'dm' || typeof body.x !== 'string' || typeof body.id !== 'string') return
    const list = this.conversations.value.get(from) ?? []
    // A message retried on another path may arrive twice.
    if (list.some((m) => !m.mine && m.id === body.id)) return
    this.add(from, { id: body.id.slice(0, 40), from, text: body.x.slice(0, MAX_TEXT), at: Date.now(), mine: false, state: 'received' })
    if (this.open !== from) {
      // Counts only for the conversations kept: a sender id is a claim (issue 12), and one stranger can make up many.
      const next = new Map([...this.unread.value].filter(([peer]) => this.conversations.value.has(peer)))
      next.set(from, (next.get(from) ?? 0) + 1)
      this.unread.value = next
    }
  }

  totalUnread(): number {
    let n = 0
    for (const v of this.unread.value.values()) n += v
    return n
  }

  private add(peer: string, message: DirectMessage): void {
    const next = new Map(this.conversations.value)
    const before = next.get(peer) ?? []
    // Re-inserted, so the map's order is the order of last activity.
    next.delete(peer)
    next.set(peer, [...before, message].slice(-KEPT_PER_PERSON))
    // The least recently active conversations go first; a stranger opening many costs a bounded list.
    while (next.size > MAX_CONVERSATIONS) next.delete(next.keys().next().value as string)
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
