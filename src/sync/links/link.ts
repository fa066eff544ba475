import { MallaError } from '../../core/errors.js'
import type { SyncRequest } from '../messages.js'

/** What a link's far end speaks: malla's protocol (push, reconciliation), or LibreMesh's whole-table sync only. */
export type Speaks = 'malla' | 'libremesh'

/** A reply as it arrived: entries validated with the table's flavour, or why there is nothing to merge. */
export type ReceivedReply =
  | { readonly t: 'table' | 'corrections'; readonly entries: ReadonlyMap<string, object> }
  | { readonly t: 'differing'; readonly answer: unknown }
  | { readonly t: 'entries'; readonly entries: ReadonlyMap<string, object>; readonly more: boolean }
  /** Nothing usable: a LibreMesh router reports its errors as an empty 200, or answered something else. */
  | { readonly t: 'empty'; readonly reason: string }

/** What a link carried, both directions, since it was made. */
export interface LinkTraffic {
  readonly exchanges: number
  readonly bytesSent: number
  readonly bytesReceived: number
}

/**
 * One neighbour or peer, as the sync engine sees it: it carries requests there and brings the replies back.
 * What carries them (LibreMesh's HTTP, a WebSocket, a data channel) is the link's business. Each link has its
 * own queue in the engine, so a slow or dead far end delays only itself.
 */
export interface SyncLink {
  /**
   * What ChangeEvent.sources holds for entries this link brought (the responder on the far end's side of the
   * wire records the same id): a change is never sent back where it came from. May change as the link learns
   * who is at the far end.
   */
  readonly id: string
  /** For logs and `malla peers`: the neighbour's base URL, a peer's id. */
  readonly label: string
  /** What the far end speaks, once an exchange told; undefined before, and after a failure. */
  readonly speaks: Speaks | undefined
  /** The far end's name, once it said. */
  readonly name: string | undefined
  readonly traffic: LinkTraffic
  /**
   * Whether this side reconciles every table when the link is added (true when absent). Both ends of a
   * two-way link add it at once, and one reconciliation carries both ways: one end starting it is enough.
   */
  readonly startsCatchUp?: boolean
  /**
   * Carries one request and resolves with its reply. Rejects with a MallaError (PEER) when no reply came,
   * and with NotMallaError when the request needs malla and the far end does not speak it.
   */
  request(request: SyncRequest): Promise<ReceivedReply>
  close(): void
}

/** The far end does not speak malla: talk LibreMesh to it. */
export class NotMallaError extends MallaError {
  constructor(where: string) {
    super('PEER', `${where} is not a malla endpoint`)
  }
}
