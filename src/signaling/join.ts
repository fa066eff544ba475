import { MallaError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import { Replica } from '../replica/replica.js'
import type { RtcFactory, RtcOptions } from '../rtc/rtc-peer.js'
import { MemoryStore } from '../storage/memory-store.js'
import { RouterLink, type RouterKind } from '../sync/router-link.js'
import type { HttpPoster } from '../transport/http-poster.js'
import type { SocketFactory } from '../transport/push-socket-client.js'
import type { Entry, TypeName } from '../core/types.js'
import { OverlaySync } from '../overlay/overlay-sync.js'
import type { JsonValue } from '../rtc/framed-channel.js'
import { departedPeers, Presence, PRESENCE_TABLE } from '../overlay/presence.js'
import { roomOwnType, roomTableType } from '../overlay/room-tables.js'
import { DirectConnector, type Sealing } from '../overlay/direct-connect.js'
import { Mesh, type MeshOptions, type MeshPeer } from './mesh.js'
import { hopDistances, LINKS_TYPE, parseLinks } from './router-links.js'
import { checkRoomName, isKeyBound, signalTypes } from './signal-records.js'
import type { Identity } from '../identity/identity.js'
import { KEYS_TABLE, KeyDirectory } from '../overlay/key-directory.js'
import { MAIL_TABLE, PrivateMessages } from '../overlay/private-messages.js'

export interface JoinOptions extends Omit<MeshOptions, 'replica' | 'rtc' | 'router'> {
  /** The router's base URL; a page passes its own origin. */
  readonly routerUrl: string
  readonly rtc: RtcFactory
  readonly poster: HttpPoster
  /** Opens WebSockets, for pushes to a malla router on one open socket (see `RouterLinkOptions.socket`). */
  readonly socket?: SocketFactory
  /** This peer's id; random when absent (16 of [a-z0-9]), the identity's key-bound id of this session with `identity`. */
  readonly peerId?: string
  /**
   * Signs this peer's signaling records with the person's key (§18.2): the peer id is then bound to the key,
   * and only signed offers and answers count, unless `acceptUnsigned`.
   */
  readonly identity?: Identity
  /** With `identity`: also answer and apply records nobody signed (peers without an identity). Default false. */
  readonly acceptUnsigned?: boolean
  /**
   * The room's own tables, by name (`chat`, `files`: 1-32 letters, digits and _). Each is a shared-state type
   * (`roomTableType`): the routers carry it, and connected peers sync it directly over their connections.
   */
  readonly tables?: readonly string[]
  /** Sync the room's tables over the peers' connections too (default true); false leaves them to the routers. */
  readonly overlay?: boolean
  /**
   * Gives up joining when this aborts (`AbortSignal.timeout(ms)`, a Cancel button). Without it, a router that is
   * slow or away is asked again until it answers.
   */
  readonly signal?: AbortSignal
  /** How often a plain LibreMesh router is polled (default 1000 ms). */
  readonly pollMs?: number
  /**
   * Use the router's STUN responder (when a malla daemon reports one), so that host addresses hidden
   * behind mDNS names still reach peers on other segments (default true).
   */
  readonly useRouterStun?: boolean
  /** This peer's display name, published in the room's presence (`presence.setName` changes it). */
  readonly name?: string
  readonly log?: Logger
}

/** A joined room: the mesh of connections, and what it learnt about the router. */
export interface Room {
  readonly id: string
  readonly mesh: Mesh
  /** This peer's replica: the signaling tables and the room's own tables (`tables`), as it knows them. */
  readonly replica: Replica
  /** The shared-state type of each of the room's tables, by name. */
  readonly tables: ReadonlyMap<string, TypeName>
  /** The room's tables over the peers' connections, and messages to any peer (`overlay.messages`). */
  readonly overlay: OverlaySync
  /**
   * Sends a JSON message (at most 64 KiB) to any peer of the room, connected to this one or not: relayed over
   * the peers' connections, delivered once. Resolves when that peer acknowledged it; rejects (PEER) when no
   * acknowledgement came within 5 s. Messages arrive as `overlay.messages.on('message', (from, body) => …)`.
   */
  send(peerId: string, body: JsonValue): Promise<void>
  /**
   * A direct connection to a chosen peer of the room (the existing one if connected already): its offer and
   * answer travel over the overlay, not the routers. Rejects with PEER when the peer is not reachable or the
   * connection does not open, BUSY when either side has too many connections.
   */
  connect(peerId: string): Promise<MeshPeer>
  /** Who is in the room: `presence.view()`, and `presence.on('change')`. */
  readonly presence: Presence
  /** The person this peer speaks for (`identity`), when it joined with one. */
  readonly identity: Identity | undefined
  /** The room's key directory: each person's public key and name, by fingerprint (§18.3). */
  readonly directory: KeyDirectory
  /**
   * Messages encrypted to one person and signed (`seal`, `open`), and messages left for someone away
   * (`post`, `waiting`, `remove`; §18.4). Only for a peer that joined with an identity.
   */
  readonly privateMessages: PrivateMessages | undefined
  readonly router: { readonly url: string; readonly kind: RouterKind; readonly name: string | undefined; readonly stunUrls: readonly string[] }
  /** Withdraws this peer's offers and answers, waits until the router has them, and closes everything. */
  leave(): Promise<void>
}

/**
 * Joins a room through a router: a leaf replica of the signaling tables in memory, kept in step with the
 * router (malla daemon or plain LibreMesh CGI, found out by the first exchange), and a `Mesh` over it.
 * Keeps asking a router that does not answer; rejects with PEER only when `signal` aborts first.
 */
export async function join(options: JoinOptions): Promise<Room> {
  const log = options.log ?? silentLogger
  // Before anything goes to the router: the room's name makes its types (roomTableType).
  checkRoomName(options.room)
  // Signature checks load with the join, not with the page (signal-crypto.ts): an app shows itself first.
  const { keySigner, recordSigner, rememberingChecker, roomAdmission, signerFingerprint } = await import('./signal-crypto.js')
  // One check per record: on arrival (admission) and when the mesh reads the tables.
  const checkRecord = rememberingChecker()
  const signer = options.identity ? recordSigner(options.identity) : undefined
  if (signer && options.peerId !== undefined) throw new MallaError('BAD_INPUT', 'a peer with an identity goes by its key-bound id: give identity or peerId, not both')
  const id = signer?.peerId ?? options.peerId ?? randomPeerId()
  const tables = new Map((options.tables ?? []).map((name) => [name, roomTableType(options.room, name)] as const))
  const presenceType = roomOwnType(options.room, PRESENCE_TABLE)
  const keysType = roomOwnType(options.room, KEYS_TABLE)
  const mailType = roomOwnType(options.room, MAIL_TABLE)
  const signal = signalTypes(options.room)
  // Everything of the room travels on its connections too, the signaling included: an offer or an answer then
  // reaches the room's peers behind other routers in milliseconds, whatever the routers' hops.
  const roomTypes = new Set<string>([signal.offers, signal.answers, ...tables.values(), presenceType, keysType, mailType])
  const refused = { offers: 0, answers: 0, presence: 0, keys: 0, mail: 0 }
  const replica = new Replica({ store: new MemoryStore(), author: id, log, admit: roomAdmission((table) => refused[table]++, checkRecord) })
  // Mail is asked of the router only by someone who can read theirs: each type is a request per poll on a Lua router.
  const link = new RouterLink({ replica, base: options.routerUrl, types: [signal.offers, signal.answers, LINKS_TYPE, presenceType, keysType, ...(options.identity ? [mailType] : []), ...tables.values()], poster: options.poster, log, ...(options.socket ? { socket: options.socket } : {}), ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}) })
  const kind = await link.start(options.signal)
  const info = kind === 'malla' ? await routerInfo(options.routerUrl) : undefined
  // Hops from this peer's router, recomputed whenever the routers' links change.
  let hops = new Map<string, number>()
  const readLinks = async () => {
    if (info?.name) hops = hopDistances(parseLinks((await replica.read({ flavour: 'ttl', type: LINKS_TYPE })).table as ReadonlyMap<string, { data?: unknown }>), info.name)
  }
  await readLinks()
  const offLinks = replica.on('change', (e) => {
    if (e.type === LINKS_TYPE) void readLinks()
  })
  const stunHost = info?.via ? (info.via.includes(':') ? `[${info.via}]` : info.via) : hostOf(options.routerUrl)
  const stunUrls = options.useRouterStun !== false && info?.stunPort ? [`stun:${stunHost}:${info.stunPort}`] : []
  const rtcOptions: RtcOptions = { ...options.rtcOptions, ...(stunUrls.length > 0 && !options.rtcOptions?.stunUrls ? { stunUrls } : {}) }
  // Who left without withdrawing their offers (a closed tab), recomputed whenever presence changes.
  let gone = new Set<string>()
  const readGone = async () => {
    gone = departedPeers((await replica.read({ flavour: 'ttl', type: presenceType })).table as ReadonlyMap<string, Entry>)
  }
  await readGone()
  const offPresence = replica.on('change', (e) => {
    if (e.type === presenceType) void readGone()
  })
  const signing = { check: checkRecord, refusedOnArrival: () => refused, ...(signer ? { signer, acceptUnsigned: options.acceptUnsigned ?? false } : {}) }
  const mesh = new Mesh({ ...options, signing, replica, rtc: options.rtc, rtcOptions, ...(info?.name ? { router: info.name } : {}), hopsTo: (router) => hops.get(router), isGone: (peer) => gone.has(peer), log })
  mesh.start()
  const connections = { peers: () => mesh.peers(), onOpen: (l: (p: MeshPeer) => void) => mesh.on('peer', l), onClose: (l: (p: MeshPeer) => void) => mesh.on('peer-closed', l) }
  const overlay = new OverlaySync({
    replica,
    id,
    connections,
    carries: (ref) => ref.flavour === 'ttl' && roomTypes.has(ref.type),
    tables: [...roomTypes].map((type) => ({ flavour: 'ttl', type: type as TypeName })),
    log,
  })
  if (options.overlay !== false) overlay.start()
  const presence = new Presence({ replica, type: presenceType, id, router: info?.name, ...(options.name !== undefined ? { name: options.name } : {}), connections, messages: overlay.messages, fingerprintOf: signerFingerprint, ...(signer && options.identity ? { sign: signer.sign, fingerprint: options.identity.fingerprint } : {}), log })
  presence.start()
  const personSign = options.identity ? keySigner(options.identity) : undefined
  const directory = new KeyDirectory({ replica, type: keysType, ...(options.identity && personSign ? { identity: options.identity, sign: personSign } : {}) })
  // The person's name is the key's unless the room is given another.
  if (options.identity) await directory.publish(options.name ?? options.identity.name).catch((e: Error) => log.warn('could not publish the key', { error: e.message }))
  const privateMessages = options.identity && personSign ? new PrivateMessages({ replica, type: mailType, identity: options.identity, directory, sign: personSign, log }) : undefined
  // Directed offers and answers go sealed to the other person's key when both have one (§15.4).
  const sealing: Sealing | undefined = privateMessages
    ? {
        seal: async (peer, text) => {
          const fingerprint = await presence.fingerprintOf(peer)
          return fingerprint === undefined ? undefined : privateMessages.seal(fingerprint, text)
        },
        open: async (peer, armored) => {
          const fingerprint = await presence.fingerprintOf(peer)
          if (fingerprint === undefined) throw new MallaError('PEER', `${peer} has no key in the room`)
          return (await privateMessages.open(armored, fingerprint)).text
        },
        plainFrom: (peer) => !isKeyBound(peer) && (options.acceptUnsigned ?? false),
      }
    : undefined
  const direct = new DirectConnector({ mesh, messages: overlay.messages, id, log, ...(sealing ? { sealing } : {}) })
  direct.start()
  let left: Promise<void> | undefined
  return {
    id,
    mesh,
    replica,
    tables,
    overlay,
    send: (peerId, body) => overlay.messages.send(peerId, body),
    connect: (peerId) => direct.connect(peerId),
    router: { url: options.routerUrl, kind, name: info?.name, stunUrls },
    presence,
    identity: options.identity,
    directory,
    privateMessages,
    // Offers first: a tab closing may die at any step, and an offer left behind is what costs others a connect
    // timeout; a presence entry left behind only shows someone away (and tells others the offers are stale).
    leave: () => (left ??= mesh.close().then(() => (direct.stop(), directory.stop(), privateMessages?.stop())).then(() => presence.stop()).then(() => overlay.stop()).then(() => (offLinks(), offPresence(), link.stop()))),
  }
}

/** A random peer id from `crypto.getRandomValues`, which pages have even outside secure contexts. */
export function randomPeerId(length = 16): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  const bytes = crypto.getRandomValues(new Uint8Array(length))
  let out = ''
  // 36 does not divide 256; the slight bias toward the first letters does not matter for an id.
  for (const b of bytes) out += alphabet[b % alphabet.length]
  return out
}

async function routerInfo(base: string): Promise<{ name?: string; via?: string; stunPort?: number } | undefined> {
  try {
    const res = await fetch(`${base.replace(/\/+$/, '')}/malla/v1/info`, { signal: AbortSignal.timeout(3000) })
    if (!res.ok) return undefined
    const body = (await res.json()) as { name?: unknown; via?: unknown; stun?: { port?: unknown } | null }
    return {
      ...(typeof body.name === 'string' ? { name: body.name.slice(0, 64) } : {}),
      ...(typeof body.via === 'string' && /^[0-9a-fA-F.:]{2,45}$/.test(body.via) ? { via: body.via } : {}),
      ...(typeof body.stun?.port === 'number' && body.stun.port > 0 ? { stunPort: body.stun.port } : {}),
    }
  } catch {
    return undefined
  }
}

function hostOf(base: string): string {
  const m = /^https?:\/\/(\[[^\]]+\]|[^/:?#]+)/i.exec(base)
  if (!m) throw new MallaError('BAD_INPUT', `not an http(s) URL: ${base}`)
  return m[1] as string
}
