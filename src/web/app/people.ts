import { signal } from '@preact/signals'
import type { PresencePeer, Room } from 'malla/browser'

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
}

/** Round-trip times are measured every 15 s; the list is looked at again this often to show them. */
const REFRESH_MS = 5000

/** Who is in the room, kept current from presence and this page's connections. */
export class People {
  readonly list = signal<readonly Person[]>([])
  private readonly offs: Array<() => void> = []
  private timer: ReturnType<typeof setInterval>
  private pending = false

  constructor(private readonly room: Room) {
    const again = () => this.refresh()
    this.offs.push(room.presence.on('change', again), room.mesh.on('peer', again), room.mesh.on('peer-closed', again))
    this.timer = setInterval(again, REFRESH_MS)
    again()
  }

  /** A person's name as shown: their own, or a short form of their id when they gave none. */
  nameOf(id: string): string {
    return this.list.value.find((p) => p.id === id)?.name ?? shortId(id)
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
      void this.room.presence.view().then((view) => (this.list.value = toPeople(view, this.room)))
    }, 50)
  }
}

function toPeople(view: readonly PresencePeer[], room: Room): Person[] {
  const direct = new Set(room.mesh.peers().map((p) => p.id))
  return view
    .map((p) => ({ id: p.id, name: p.name ?? shortId(p.id), router: p.router, me: p.id === room.id, direct: direct.has(p.id), present: p.reachable, rttMs: p.rttMs, links: p.links }))
    .sort((a, b) => Number(b.me) - Number(a.me) || Number(b.present) - Number(a.present) || a.name.localeCompare(b.name))
}

export function shortId(id: string): string {
  return `#${id.slice(0, 6)}`
}
