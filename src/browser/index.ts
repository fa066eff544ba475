/**
 * What a page imports (`/malla.js` on every malla daemon, or `malla/browser`): `joinRoom` to meet other
 * peers through the router that served the page, the isomorphic core underneath it, and files between peers
 * (`FileTransfers` on a connection's `fileChannel`, with a page's `Blob`s as sources and sinks).
 */
import { join, type JoinOptions, type Room } from '../signaling/join.js'
import { fetchPoster } from '../transport/http-poster.js'
import type { SocketLike } from '../transport/push-socket-client.js'
import { browserRtcFactory } from './rtc/browser-peer.js'

export * from '../core/index.js'
export { Replica, type ChangeEvent, type Snapshot } from '../replica/replica.js'
export { MemoryStore } from '../storage/memory-store.js'
export type { TableRef } from '../storage/table-store.js'
export { exchangeTable, syncTable, type SyncOutcome } from '../sync/full-table-sync.js'
export { endpointUrl } from '../sync/links/http-wire.js'
export { RouterLink, type RouterKind } from '../sync/router-link.js'
export { fetchPoster } from '../transport/http-poster.js'
export { DaemonApiClient } from '../transport/daemon-api-client.js'
export { Mesh, type MeshEvents, type MeshOptions, type MeshPeer, type MeshPeerEvents, type MeshStats } from '../signaling/mesh.js'
export { join, randomPeerId, type JoinOptions, type Room } from '../signaling/join.js'
export { OverlaySync, type OverlaySyncOptions } from '../overlay/overlay-sync.js'
export { roomTableType } from '../overlay/room-tables.js'
export { Presence, displayName, type PresencePeer } from '../overlay/presence.js'
export { LINKS_TYPE, parseLinks } from '../signaling/router-links.js'
export { MessageRouter } from '../overlay/message-router.js'
export { browserRtcFactory } from './rtc/browser-peer.js'
export * from '../files/file-transfer.js'
export { BlobSink, blobSink, blobSource } from './files/blob-sink.js'
export { IdbKeyStore } from './identity/idb-key-store.js'
export type { MessageKind, MessageValue, Progress } from '../rtc/framed-channel.js'
export type { RtcChannel, RtcFactory, RtcOptions, RtcPeer } from '../rtc/rtc-peer.js'

export type BrowserJoinOptions = Partial<Omit<JoinOptions, 'room'>>

/**
 * Joins `room` through the router that served this page (its own origin), with the browser's WebRTC.
 * Works against a malla daemon (live feed, STUN) and against a plain LibreMesh router (polling).
 */
export function joinRoom(room: string, options: BrowserJoinOptions = {}): Promise<Room> {
  const rtc = options.rtc ?? browserRtcFactory(globalThis.RTCPeerConnection, {}, options.log)
  const socket = typeof WebSocket === 'function' ? (url: string) => new WebSocket(url) as unknown as SocketLike : undefined
  return join({ rtc, poster: fetchPoster, routerUrl: location.origin, ...(socket ? { socket } : {}), ...options, room })
}
