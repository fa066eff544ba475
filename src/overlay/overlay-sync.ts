import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import type { Replica } from '../replica/replica.js'
import { channelPipe } from '../rtc/channel-pipe.js'
import { FramedChannel } from '../rtc/framed-channel.js'
import type { RtcChannel } from '../rtc/rtc-peer.js'
import type { TableRef } from '../storage/table-store.js'
import { SyncEngine } from '../sync/engine.js'
import { ChannelLink } from '../sync/links/channel-link.js'
import type { LinkTraffic } from '../sync/links/link.js'
import { MessageRouter } from './message-router.js'

/** What the overlay needs of a connection: who is at the far end, and the connection's sync channel. */
export interface OverlayConnection {
  readonly id: string
  readonly syncChannel: RtcChannel
}

/** Where connections come from and go (a Mesh). */
export interface ConnectionSource {
  peers(): readonly OverlayConnection[]
  onOpen(listener: (peer: OverlayConnection) => void): () => void
  onClose(listener: (peer: OverlayConnection) => void): () => void
}

export interface OverlaySyncOptions {
  readonly replica: Replica
  readonly connections: ConnectionSource
  /** This peer's id, told to each far end (it decides which end starts the catch-up). */
  readonly id: string
  /** The tables that travel on the overlay; the others are neither sent nor accepted there. */
  readonly carries: (ref: TableRef) => boolean
  /** The room's tables, reconciled with every connection even before this peer holds any of them. */
  readonly tables?: readonly TableRef[]
  /** How often every table is reconciled with every connection, to repair what pushes missed (default 30 s). */
  readonly repairMs?: number
  readonly log?: Logger
}

/** A sync message may be a page of 256 KiB of entries, in up to 3 bytes a character, and its frame. */
const MAX_SYNC_MESSAGE_BYTES = 4 * 1024 * 1024

/**
 * shared-state over the peers' own connections: each open connection is a channel link on its sync channel,
 * and one sync engine with the relay policy pushes every change of the carried tables to every connection but
 * the one it came from. So a change spreads across the room at the speed of the connections, whatever the number
 * of routers between the peers; the routers' tables still get each entry from its author, as before.
 */
export class OverlaySync {
  /** Messages to any peer of the room, over the same connections. */
  readonly messages: MessageRouter
  private readonly engine: SyncEngine
  /** By connection: two connections to one peer may overlap for a moment (glare), each with its own link. */
  private readonly links = new Map<OverlayConnection, ChannelLink>()
  private readonly offs: Array<() => void> = []
  private timer: ReturnType<typeof setInterval> | undefined
  private readonly log: Logger

  constructor(private readonly options: OverlaySyncOptions) {
    this.log = options.log ?? silentLogger
    this.engine = new SyncEngine({ replica: options.replica, policy: { role: 'relay', carries: options.carries, ...(options.tables ? { tables: options.tables } : {}) }, log: this.log, debounceMs: 0 })
    this.messages = new MessageRouter({ id: options.id, log: this.log })
  }

  start(): void {
    this.engine.start()
    this.offs.push(
      this.options.connections.onOpen((peer) => this.add(peer)),
      this.options.connections.onClose((peer) => this.drop(peer)),
    )
    for (const peer of this.options.connections.peers()) this.add(peer)
    this.timer = setInterval(() => void this.engine.repairAll(), this.options.repairMs ?? 30_000)
  }

  async stop(): Promise<void> {
    for (const off of this.offs.splice(0)) off()
    clearInterval(this.timer)
    for (const peer of [...this.links.keys()]) this.drop(peer)
    this.messages.close()
    await this.engine.stop()
  }

  /** What the exchanges of one table carried over every connection so far (the ones this side started). */
  tableTraffic(ref: TableRef): LinkTraffic {
    return this.engine.tableTraffic(ref)
  }

  /** What the overlay's own exchanges carried, both ways, since it started. */
  traffic(): LinkTraffic {
    return this.engine.traffic()
  }

  /** The peers this one syncs with now, by id. */
  linked(): string[] {
    return [...new Set([...this.links.keys()].map((c) => c.id))]
  }

  private add(peer: OverlayConnection): void {
    if (this.links.has(peer)) return
    // No keepalives of its own: the connection's app channel sends them, and declares the peer dead.
    const channel = new FramedChannel(peer.syncChannel, { maxMessageBytes: MAX_SYNC_MESSAGE_BYTES, keepAliveMs: 0 })
    const link = new ChannelLink({
      replica: this.options.replica,
      pipe: channelPipe(channel),
      peer: peer.id,
      ownName: this.options.id,
      carries: this.options.carries,
      onRoute: (route, from) => this.messages.receive(route, from),
      log: this.log,
    })
    this.links.set(peer, link)
    this.messages.attach(link)
    link.onClose((why) => {
      if (this.links.get(peer) !== link) return
      this.log.debug('overlay link closed', { peer: peer.id, why })
      this.drop(peer)
    })
    this.engine.add(link)
  }

  private drop(peer: OverlayConnection): void {
    const link = this.links.get(peer)
    if (link === undefined) return
    this.links.delete(peer)
    this.messages.detach(link)
    this.engine.remove(link)
  }
}
