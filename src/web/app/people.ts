import { signal } from '@preact/signals'
import type { PresencePeer, Room } from 'malla/browser'
import type { Contacts } from './contacts.js'

/** One person of the room as the app shows them. */
export interface Person {
  readonly id: string
  readonly name: string
  readonly router: string | undefined
  readonly me: boolean
  /** Connected to this page directly. */
  readonly direct: boolean
  /** In the room now (see Presence.view). */
  readonly present: boolean
  readonly rttMs: number | undefined
  readonly links: readonly string[]
  /** Their key's fingerprint, when their presence is signed by it. */
  readonly fingerprint: string | undefined
  /** This person marked that key as verified. */
  readonly verified: boolean
}

/** Round-trip times are measured every 15 s; the list is looked at again this often to show them. */
const REFRESH_MS = 5000

/** Who is in the room, kept current from presence and this page's connections. */
export class People {
  readonly list = signal<readonly Person[]>([])
  private readonly offs: Array<() => void> = []
  private timer: ReturnType<typeof setInterval>
  private pending = false

  constructor(private readonly room: Room, private readonly contacts: Contacts) {
    const again = () => this.refresh()
    this.offs.push(room.presence.on('change', again), room.mesh.on('peer', again), room.mesh.on('peer-closed', again), contacts.verified.subscribe(again))
    this.timer = setInterval(again, REFRESH_MS)
    again()
  }

  /** A person's name as shown: their own, or a short form of their id when they gave none. */
  nameOf(id: string): string {
    return this.list.value.find((p) => p.id === id)?.name ?? shortId(id)
  }

  /** The fingerprint of a person's key, as their signed presence says. */
  fingerprintOf(id: string): string | undefined {
    return this.list.value.find((p) => p.id === id)?.fingerprint
  }

  /** Calls `listener` whenever the list changes. */
  watch(listener: () => void): () => void {
    return this.list.subscribe(listener)
  }

  /** Everyone present but this page. */
  others(): Person[] {
    return this.list.value.filter((p) => p.present && !p.me)
  }

  stop(): void {
    for (const off of this.offs.splice(0)) off()
    clearInterval(this.timer)
  }

  /** Coalesces bursts (a join changes presence, connections and times at once) into one read. */
  private refresh(): void {
    if (this.pending) return
    this.pending = true
    setTimeout(() => {
      this.pending = false
      void this.room.presence.view().then((view) => (this.list.value = toPeople(view, this.room, this.contacts)))
    }, 50)
  }
}

function toPeople(view: readonly PresencePeer[], room: Room, contacts: Contacts): Person[] {
  const direct = new Set(room.mesh.peers().map((p) => p.id))
  return view
    .map((p) => ({ id: p.id, name: p.name ?? shortId(p.id), router: p.router, me: p.id === room.id, direct: direct.has(p.id), present: p.reachable, rttMs: p.rttMs, links: p.links, fingerprint: p.fingerprint, verified: contacts.isVerified(p.fingerprint) }))
    .sort((a, b) => Number(b.me) - Number(a.me) || Number(b.present) - Number(a.present) || a.name.localeCompare(b.name))
}

export function shortId(id: string): string {
  return `#${id.slice(0, 6)}`
}
