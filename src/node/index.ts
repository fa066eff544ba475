import { WebSocket } from 'ws'
import { join, type JoinOptions, type Room } from '../signaling/join.js'
import type { SocketLike } from '../transport/push-socket-client.js'
import { nodeHttpPoster } from './transport/node-http-poster.js'
import { weriftRtcFactory } from './rtc/werift-peer.js'

export * from '../core/index.js'
export { Replica, type ChangeEvent, type Snapshot } from '../replica/replica.js'
export { MemoryStore } from '../storage/memory-store.js'
export type { TableRef, TableStore } from '../storage/table-store.js'
export { FileStore } from './storage/file-store.js'
export { PeerDaemon, DEFAULTS, type PeerDaemonOptions } from './daemon/peer-daemon.js'
export { nodeHttpPoster } from './transport/node-http-poster.js'
export { syncTable } from '../sync/full-table-sync.js'
export { endpointUrl } from '../sync/links/http-wire.js'
export { weriftRtcFactory } from './rtc/werift-peer.js'
export * from '../files/file-transfer.js'
export { fileSink, fileSource } from './files/file-io.js'
export { FileKeyStore, defaultKeyPath } from './identity/file-key-store.js'
export { Mesh, type MeshEvents, type MeshOptions, type MeshPeer, type MeshPeerEvents, type MeshStats } from '../signaling/mesh.js'
export { join, randomPeerId, type JoinOptions, type Room } from '../signaling/join.js'
export { OverlaySync, type OverlaySyncOptions } from '../overlay/overlay-sync.js'
export { roomTableType } from '../overlay/room-tables.js'
export { Presence, type PresencePeer } from '../overlay/presence.js'
export { MessageRouter } from '../overlay/message-router.js'
export { RouterLink, type RouterKind } from '../sync/router-link.js'
export type { MessageKind, MessageValue, Progress } from '../rtc/framed-channel.js'
export type { RtcChannel, RtcFactory, RtcOptions, RtcPeer } from '../rtc/rtc-peer.js'

/** Joins `room` through the router at `routerUrl`, with werift as the WebRTC stack. */
export function joinRoom(room: string, options: Partial<Omit<JoinOptions, 'room'>> & { readonly routerUrl: string }): Promise<Room> {
  return join({ rtc: options.rtc ?? weriftRtcFactory(), poster: nodeHttpPoster, socket: wsSocket, ...options, room })
}

/** `ws`'s WebSocket, which has the WHATWG event-handler properties a push socket uses (Node 20 has no global one). */
export function wsSocket(url: string): SocketLike {
  return new WebSocket(url, { perMessageDeflate: false }) as unknown as SocketLike
}
