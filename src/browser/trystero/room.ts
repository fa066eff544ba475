import { MallaError } from '../../core/errors.js'
import { silentLogger, type Logger } from '../../core/log.js'
import type { Room as MallaRoom } from '../../signaling/join.js'
import type { MeshPeer } from '../../signaling/mesh.js'
import { Actions, type ActionPeer, type DataPayload, type MessageAction, type MessageActionConfig } from './actions.js'
import type { ReassemblyLimits } from './reassembly.js'

/**
 * What `getPeers()` gives for each peer. Trystero gives the `RTCPeerConnection`; malla keeps its connections to
 * itself (its channels carry the room's sync and signaling too), and gives what it knows of the peer.
 */
export interface PeerInfo {
  readonly id: string
  /** The router the peer hangs off, by name, when its offer said. */
  readonly router: string | undefined
  /** The fingerprint of the OpenPGP key that signed the peer's signaling, when it was signed. */
  readonly signer: string | undefined
}

/** A room as Trystero 0.25 has it, less media. */
export interface Room {
  makeAction<T extends DataPayload = DataPayload>(name: string, config?: MessageActionConfig<T>): MessageAction<T>
  ping(peerId: string): Promise<number>
  leave(): Promise<void>
  isPassive(): boolean
  getPeers(): Record<string, PeerInfo>
  /** Peers this page is connected to; `null` clears. A handler set later is told of the peers already there. */
  onPeerJoin: ((peerId: string) => void) | null
  onPeerLeave: ((peerId: string) => void) | null
  /** Never called: malla/trystero carries no media. */
  onPeerStream: ((...args: unknown[]) => void) | null
  onPeerTrack: ((...args: unknown[]) => void) | null
  /** Media is out of scope: these throw (BAD_INPUT). */
  addStream(...args: unknown[]): never
  removeStream(...args: unknown[]): never
  addTrack(...args: unknown[]): never
  removeTrack(...args: unknown[]): never
  replaceTrack(...args: unknown[]): never
  /** malla's own room underneath, once joined (presence, tables, identity): not in Trystero. */
  readonly joined: Promise<MallaRoom>
}

export interface RoomOptions {
  /** Joins the malla room; called once, at once. */
  readonly join: () => Promise<MallaRoom>
  readonly limits?: ReassemblyLimits
  readonly log?: Logger
  /** Told when joining failed (Trystero's `onJoinError`). */
  readonly onJoinError?: (error: MallaError) => void
}

/**
 * A Trystero room over a malla room: its peers are the peers this page holds a connection to, and actions
 * travel as binary messages of each connection's app channel (`MeshPeer.send`), which nothing else in a room
 * joined through malla/trystero uses.
 */
export function createRoom(options: RoomOptions): Room {
  const log = options.log ?? silentLogger
  const peers = new Map<string, MeshPeer & ActionPeer>()
  const actions = new Actions({ peers: () => peers, log, ...(options.limits ? { limits: options.limits } : {}) })
  const handlers: { join: Room['onPeerJoin']; leave: Room['onPeerLeave']; stream: Room['onPeerStream']; track: Room['onPeerTrack'] } = { join: null, leave: null, stream: null, track: null }
  const offs: Array<() => void> = []
  const listening = new Map<MeshPeer, () => void>()
  let left = false
  const tell = (handler: ((id: string) => void) | null, id: string) => {
    if (!handler) return
    try {
      handler(id)
    } catch (e) {
      log.error('peer handler failed', { peer: id, error: e instanceof Error ? e.message : String(e) })
    }
  }
  const attach = (peer: MeshPeer) => {
    const known = peers.has(peer.id)
    peers.set(peer.id, peer)
    listening.set(
      peer,
      peer.on('message', (value, kind) => {
        if (kind === 'binary' && peers.get(peer.id) === peer) actions.receive(peer.id, value as Uint8Array)
      }),
    )
    if (!known) tell(handlers.join, peer.id)
  }
  const detach = (room: MallaRoom, peer: MeshPeer) => {
    listening.get(peer)?.()
    listening.delete(peer)
    if (peers.get(peer.id) !== peer) return
    // Two connections to one peer (glare both sides resolved late): the one kept takes over, nobody left.
    const other = room.mesh.peers().find((p) => p.id === peer.id && p !== peer)
    if (other) return void peers.set(peer.id, other)
    peers.delete(peer.id)
    actions.forget(peer.id)
    tell(handlers.leave, peer.id)
  }
  const joined = options.join()
  joined.then(
    (room) => {
      if (left) return
      offs.push(
        room.mesh.on('peer', attach),
        room.mesh.on('peer-closed', (p) => detach(room, p)),
      )
      for (const p of room.mesh.peers()) attach(p)
    },
    (e: unknown) => {
      const error = e instanceof MallaError ? e : new MallaError('PEER', `could not join: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
      if (options.onJoinError) options.onJoinError(error)
      else log.error('could not join the room', { error: error.message })
    },
  )
  const media = (what: string) => (): never => {
    throw new MallaError('BAD_INPUT', `${what}: media streams are out of scope for malla/trystero (actions only; see docs/trystero.md)`)
  }
  let leaving: Promise<void> | undefined
  return {
    makeAction: (name, config) => actions.make(name, config),
    ping: (id) => actions.ping(id),
    leave: () =>
      (leaving ??= (async () => {
        left = true
        for (const off of [...offs.splice(0), ...listening.values()]) off()
        listening.clear()
        for (const id of peers.keys()) actions.forget(id)
        peers.clear()
        actions.close()
        const room = await joined.catch(() => undefined)
        await room?.leave()
      })()),
    isPassive: () => false,
    getPeers: () => Object.fromEntries([...peers].map(([id, p]) => [id, Object.freeze({ id, router: p.router, signer: p.signer })])),
    get onPeerJoin() {
      return handlers.join
    },
    set onPeerJoin(handler) {
      handlers.join = handler
      for (const id of peers.keys()) tell(handler, id)
    },
    get onPeerLeave() {
      return handlers.leave
    },
    set onPeerLeave(handler) {
      handlers.leave = handler
    },
    get onPeerStream() {
      return handlers.stream
    },
    set onPeerStream(handler) {
      handlers.stream = handler
    },
    get onPeerTrack() {
      return handlers.track
    },
    set onPeerTrack(handler) {
      handlers.track = handler
    },
    addStream: media('addStream'),
    removeStream: media('removeStream'),
    addTrack: media('addTrack'),
    removeTrack: media('removeTrack'),
    replaceTrack: media('replaceTrack'),
    joined,
  }
}
