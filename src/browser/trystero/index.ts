/**
 * `malla/trystero` (`/malla-trystero.js` on every malla daemon): Trystero's API (0.25) over a malla mesh, so a
 * Trystero app runs on a community network with no internet by changing its import. Peers meet through the
 * router that served the page (shared-state signaling), not through public relays. See docs/trystero.md.
 */
import { badInput, MallaError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import type { Identity } from '../../identity/identity.js'
import { join, randomPeerId, type Room as MallaRoom } from '../../signaling/join.js'
import { fetchPoster } from '../../transport/http-poster.js'
import type { SocketLike } from '../../transport/push-socket-client.js'
import { browserRtcFactory } from '../rtc/browser-peer.js'
import { createRoom, type Room } from './room.js'
import type { ReassemblyLimits } from './reassembly.js'
import { MAX_FRAME_BYTES } from './wire.js'

export type { ActionProgressHandler, DataPayload, JsonValue, MessageAction, MessageActionConfig, MessageContext, SendOptions, TargetPeers } from './actions.js'
export type { PeerInfo, Room } from './room.js'
export type { ReassemblyLimits } from './reassembly.js'
export { MAX_ACTION_NAME_BYTES, MAX_META_BYTES } from './wire.js'

export interface JoinRoomConfig {
  /** Required, as in Trystero: names the app; peers meet only peers of the same app and room. 1-32 of [A-Za-z0-9_.@+-]. */
  readonly appId: string
  /** The router (malla daemon or LibreMesh router) to meet peers through; default the page's own origin. */
  readonly routerUrl?: string
  /** Sign signaling with this person's key (malla/identity): the page then goes by a key-bound id (see `joined`). */
  readonly identity?: Identity
  /** With `identity`: also connect to peers that sign nothing. */
  readonly acceptUnsigned?: boolean
  /** The name others see in the room's presence. */
  readonly name?: string
  /** Connections to look for (default 5) and to accept at most (default 8): Trystero is a full mesh, malla a bounded one. */
  readonly target?: number
  readonly max?: number
  /** What this page holds, at most, of payloads still arriving. */
  readonly limits?: ReassemblyLimits
  readonly log?: Logger
  /** Not supported (AES-GCM needs `crypto.subtle`, which plain-http pages lack): rejected, never ignored. */
  readonly password?: never
  readonly rtcPolyfill?: typeof RTCPeerConnection
  /** Trystero's relay and ICE settings: accepted and ignored (no relays here; the router's STUN gives addresses). */
  readonly relayConfig?: unknown
  readonly rtcConfig?: unknown
  readonly turnConfig?: unknown
  readonly trickleIce?: boolean
}

export interface JoinError {
  readonly error: string
  readonly appId: string
  readonly roomId: string
  readonly peerId: string
}

export interface JoinRoomCallbacks {
  readonly onJoinError?: (details: JoinError) => void
}

/** This page's peer id in every room it joins without an identity: 20 of [a-z0-9] (malla's id alphabet). */
export const selfId: string = randomPeerId(20)

/** Trystero returns the same room for the same app and room id while it is joined; so does this. */
const rooms = new Map<string, Room>()
const APP_ID = /^[\w.@+-]{1,32}$/
const ROOM_ID = /^[\w.:@+-]{1,64}$/

/**
 * Joins room `roomId` of app `config.appId` through the router, at once (Trystero's `joinRoom` is not async):
 * peers show up through `onPeerJoin` as connections open. The malla room is `<appId>:<roomId>`.
 */
export function joinRoom(config: JoinRoomConfig, roomId: string, callbacks: JoinRoomCallbacks = {}): Room {
  if (typeof config?.appId !== 'string' || !APP_ID.test(config.appId)) throw badInput(`appId is required: 1-32 of letters, digits and _.@+- (got ${JSON.stringify(config?.appId)})`)
  if (typeof roomId !== 'string' || !ROOM_ID.test(roomId)) throw badInput(`bad room id ${JSON.stringify(roomId)}: 1-64 of letters, digits and _.:@+-`)
  if ((config as { password?: unknown }).password !== undefined) throw badInput('password is not supported by malla/trystero (no crypto.subtle on plain http://): give an identity to sign signaling instead')
  if ((config as { passive?: unknown }).passive) throw badInput('passive peers are not supported by malla/trystero')
  const room = `${config.appId}:${roomId}`
  if (room.length > 64) throw badInput(`appId and room id together are over 64 characters: ${room}`)
  const existing = rooms.get(room)
  if (existing) return existing
  const Rtc = config.rtcPolyfill ?? globalThis.RTCPeerConnection
  if (typeof Rtc !== 'function') throw new MallaError('BAD_INPUT', 'no RTCPeerConnection here: pass rtcPolyfill')
  const socket = typeof WebSocket === 'function' ? (url: string) => new WebSocket(url) as unknown as SocketLike : undefined
  const joinMalla = (): Promise<MallaRoom> =>
    join({
      room,
      rtc: browserRtcFactory(Rtc, {}, config.log),
      poster: fetchPoster,
      routerUrl: config.routerUrl ?? location.origin,
      ...(socket ? { socket } : {}),
      ...(config.identity ? { identity: config.identity, acceptUnsigned: config.acceptUnsigned ?? false } : { peerId: selfId }),
      ...(config.name !== undefined ? { name: config.name } : {}),
      target: config.target ?? 5,
      max: config.max ?? 8,
      // A frame of an action never needs the channel's own reassembly: a peer may not make it hold more than one.
      maxMessageBytes: MAX_FRAME_BYTES + 1024,
      ...(config.log ? { log: config.log } : {}),
    })
  const created = createRoom({
    join: joinMalla,
    ...(config.limits ? { limits: config.limits } : {}),
    ...(config.log ? { log: config.log } : {}),
    onJoinError: (e) => {
      rooms.delete(room)
      const details = { error: e.message, appId: config.appId, roomId, peerId: selfId }
      if (callbacks.onJoinError) callbacks.onJoinError(details)
      else console.error(`malla/trystero: could not join ${room}: ${e.message}`)
    },
  })
  const leave = created.leave
  created.leave = () => {
    if (rooms.get(room) === created) rooms.delete(room)
    return leave()
  }
  rooms.set(room, created)
  return created
}
