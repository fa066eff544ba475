import { signal } from '@preact/signals'
import { blobSink, blobSource, FileTransfers, type IncomingTransfer, type MeshPeer, type OutgoingTransfer, type Room } from 'malla/browser'

/** One transfer as the Files view shows it. */
export interface TransferView {
  readonly key: string
  readonly peer: string
  readonly direction: 'in' | 'out'
  readonly name: string
  readonly size: number
  readonly bytes: number
  readonly bytesPerSecond: number
  readonly secondsLeft: number
  readonly state: 'connecting' | 'offered' | 'active' | 'done' | 'cancelled' | 'failed'
  readonly reason?: string
  /** A received file, ready to save. */
  readonly url?: string
}

/** Transfers listed at most; the oldest finished ones go first (their downloads are released). */
const MAX_LISTED = 50

/**
 * Files to and from people, each transfer on the connection's file channel (`peer.fileChannel`), so chat and
 * sync messages are not queued behind its frames on one channel; on the link they share, the sender keeps only
 * about 5 ms of file ahead of them once it is full (docs/protocol.md §16). A file arrives only once its receiver
 * accepts it, and is kept as Blob parts (`blobSink`), which the browser pages to disk: hundreds of MB do not sit in
 * the page's memory.
 */
export class FileSharing {
  readonly transfers = signal<readonly TransferView[]>([])
  private readonly byPeer = new Map<string, FileTransfers>()
  private readonly handles = new Map<string, IncomingTransfer | OutgoingTransfer>()
  private readonly offs: Array<() => void> = []
  private counter = 0

  constructor(private readonly room: Room) {
    for (const peer of room.mesh.peers()) this.attach(peer)
    this.offs.push(room.mesh.on('peer', (peer) => this.attach(peer)))
  }

  /** Connects to `to` if needed (a directed connection), then offers the file. */
  async send(to: string, file: Blob & { readonly name?: string }): Promise<void> {
    const key = `out-${this.counter++}`
    const name = file.name ?? 'file'
    this.put({ key, peer: to, direction: 'out', name, size: file.size, bytes: 0, bytesPerSecond: 0, secondsLeft: Infinity, state: 'connecting' })
    let transfers: FileTransfers
    try {
      const peer = await this.room.connect(to)
      transfers = this.attach(peer)
    } catch (e) {
      this.patch(key, { state: 'failed', reason: (e as Error).message })
      return
    }
    const out = transfers.send(blobSource(file), { name, mime: file.type })
    this.handles.set(key, out)
    this.patch(key, { state: 'offered' })
    this.follow(key, out)
  }

  accept(key: string): void {
    const handle = this.handles.get(key) as IncomingTransfer | undefined
    const view = this.transfers.value.find((v) => v.key === key)
    if (!handle || !view || view.direction !== 'in' || view.state !== 'offered') return
    const sink = blobSink()
    handle.on('done', () => this.patch(key, { url: URL.createObjectURL(sink.blob(handle.mime || 'application/octet-stream')) }))
    handle.accept(sink)
    this.patch(key, { state: 'active' })
  }

  decline(key: string): void {
    ;(this.handles.get(key) as IncomingTransfer | undefined)?.decline()
    this.patch(key, { state: 'cancelled' })
  }

  cancel(key: string): void {
    this.handles.get(key)?.cancel()
  }

  /** Takes an ended transfer off the list, and lets its received file go (the browser frees or unpages it). */
  dismiss(key: string): void {
    const view = this.transfers.value.find((v) => v.key === key)
    if (!view || view.state === 'active' || view.state === 'offered' || view.state === 'connecting') return
    if (view.url) URL.revokeObjectURL(view.url)
    this.transfers.value = this.transfers.value.filter((v) => v.key !== key)
  }

  stop(): void {
    for (const off of this.offs.splice(0)) off()
    for (const t of this.byPeer.values()) t.stop()
    for (const v of this.transfers.value) if (v.url) URL.revokeObjectURL(v.url)
  }

  private attach(peer: MeshPeer): FileTransfers {
    const existing = this.byPeer.get(peer.id)
    if (existing) return existing
    const transfers = new FileTransfers({ channel: peer.fileChannel })
    transfers.start()
    this.byPeer.set(peer.id, transfers)
    transfers.on('offer', (incoming) => {
      const key = `in-${this.counter++}`
      this.handles.set(key, incoming)
      this.put({ key, peer: peer.id, direction: 'in', name: incoming.name, size: incoming.size, bytes: 0, bytesPerSecond: 0, secondsLeft: Infinity, state: 'offered' })
      this.follow(key, incoming)
    })
    peer.on('close', () => {
      transfers.stop()
      if (this.byPeer.get(peer.id) === transfers) this.byPeer.delete(peer.id)
    })
    return transfers
  }

  private follow(key: string, transfer: IncomingTransfer | OutgoingTransfer): void {
    transfer.on('progress', (p) => this.patch(key, { state: 'active', bytes: p.bytes, bytesPerSecond: p.bytesPerSecond, secondsLeft: p.secondsLeft }))
    transfer.on('end', (e) => {
      this.handles.delete(key)
      this.patch(key, { state: e.state === 'done' ? 'done' : e.state === 'cancelled' ? 'cancelled' : 'failed', ...(e.reason !== undefined ? { reason: e.reason } : {}), ...(e.state === 'done' ? { bytes: transfer.size } : {}) })
    })
  }

  private put(view: TransferView): void {
    const list = [view, ...this.transfers.value]
    while (list.length > MAX_LISTED) {
      let i = list.length - 1
      while (i >= 0 && !['done', 'cancelled', 'failed'].includes((list[i] as TransferView).state)) i--
      const [gone] = list.splice(i === -1 ? list.length - 1 : i, 1)
      if (gone?.url) URL.revokeObjectURL(gone.url)
    }
    this.transfers.value = list
  }

  private patch(key: string, change: Partial<TransferView>): void {
    this.transfers.value = this.transfers.value.map((v) => (v.key === key ? { ...v, ...change } : v))
  }
}
