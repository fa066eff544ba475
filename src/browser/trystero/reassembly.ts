import { concatBytes } from '../../transport/http-poster.js'
import type { FirstChunk, NextChunk, PayloadKind } from './wire.js'

/** What a page holds, at most, of payloads still arriving: each bound holds whatever the peers send. */
export interface ReassemblyLimits {
  /** Largest payload taken from a peer (default 32 MiB); a transfer declaring more is refused at its first chunk. */
  readonly maxMessageBytes?: number
  /** Bytes one peer's unfinished transfers may declare together (default 64 MiB). */
  readonly maxPeerBytes?: number
  /** Bytes all peers' unfinished transfers may declare together (default 128 MiB). */
  readonly maxTotalBytes?: number
  /** Unfinished transfers one peer may have at once (default 16). */
  readonly maxPeerTransfers?: number
  /** A transfer that got no chunk for this long is dropped when its room is wanted (default 30 s). */
  readonly idleMs?: number
}

/** One transfer in progress, or just completed. */
export interface Transfer {
  readonly id: number
  readonly name: string
  readonly kind: PayloadKind
  readonly meta: string | undefined
  readonly total: number
  received: number
  parts: Uint8Array[]
  at: number
}

export type ChunkOutcome =
  | { readonly t: 'progress'; readonly transfer: Transfer }
  | { readonly t: 'done'; readonly transfer: Transfer; readonly payload: Uint8Array }
  | { readonly t: 'dropped'; readonly why: DropReason }

export type DropReason = 'too-large' | 'peer-budget' | 'total-budget' | 'too-many' | 'unknown' | 'overrun' | 'short' | 'duplicate'

const DEFAULTS = { maxMessageBytes: 32 * 1024 ** 2, maxPeerBytes: 64 * 1024 ** 2, maxTotalBytes: 128 * 1024 ** 2, maxPeerTransfers: 16, idleMs: 30_000 }

/**
 * Payloads arriving in chunks from several peers, each held until its last chunk. A transfer reserves the size
 * its first chunk declares against the peer's and the page's budgets, so a peer that declares huge sizes, opens
 * endless transfers or sends chunks past what it declared gets its chunks dropped, never memory; a transfer
 * left idle gives its reservation back when someone needs it.
 */
export class Reassembly {
  private readonly limits: Required<ReassemblyLimits>
  private readonly byPeer = new Map<string, Map<number, Transfer>>()
  private peerBytes = new Map<string, number>()
  private totalBytes = 0
  /** Chunks dropped, by reason. */
  readonly dropped: Record<DropReason, number> = { 'too-large': 0, 'peer-budget': 0, 'total-budget': 0, 'too-many': 0, unknown: 0, overrun: 0, short: 0, duplicate: 0 }

  constructor(
    limits: ReassemblyLimits = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULTS, ...limits }
  }

  /** Bytes reserved now, for all peers and for `peer`. */
  reserved(peer?: string): number {
    return peer === undefined ? this.totalBytes : (this.peerBytes.get(peer) ?? 0)
  }

  /** Unfinished transfers of `peer`. */
  transfers(peer: string): number {
    return this.byPeer.get(peer)?.size ?? 0
  }

  chunk(peer: string, frame: FirstChunk | NextChunk): ChunkOutcome {
    const transfers = this.byPeer.get(peer) ?? new Map<number, Transfer>()
    let transfer = transfers.get(frame.id)
    if (frame.first) {
      if (transfer) return this.drop('duplicate')
      const refused = this.reserve(peer, transfers, frame.total)
      if (refused) return this.drop(refused)
      transfer = { id: frame.id, name: frame.name, kind: frame.kind, meta: frame.meta, total: frame.total, received: 0, parts: [], at: this.now() }
      transfers.set(frame.id, transfer)
      this.byPeer.set(peer, transfers)
    } else if (!transfer) return this.drop('unknown')
    if (transfer.received + frame.bytes.byteLength > transfer.total) {
      this.end(peer, transfer)
      return this.drop('overrun')
    }
    if (frame.bytes.byteLength > 0) {
      // A copy: the frame's buffer is the channel's, and one small view would keep a whole frame alive anyway.
      transfer.parts.push(frame.bytes.slice())
      transfer.received += frame.bytes.byteLength
    }
    transfer.at = this.now()
    if (!frame.last) return { t: 'progress', transfer }
    this.end(peer, transfer)
    if (transfer.received !== transfer.total) return this.drop('short')
    return { t: 'done', transfer, payload: transfer.parts.length === 1 ? (transfer.parts[0] as Uint8Array) : concatBytes(transfer.parts, transfer.total) }
  }

  /** Forgets a peer that left, and what it was sending. */
  forget(peer: string): void {
    for (const t of [...(this.byPeer.get(peer)?.values() ?? [])]) this.end(peer, t)
    this.byPeer.delete(peer)
    this.peerBytes.delete(peer)
  }

  /** Why `total` more bytes cannot be taken from `peer`, or undefined once they are reserved. */
  private reserve(peer: string, transfers: Map<number, Transfer>, total: number): DropReason | undefined {
    if (total > this.limits.maxMessageBytes) return 'too-large'
    const fits = (): DropReason | undefined => {
      if (transfers.size >= this.limits.maxPeerTransfers) return 'too-many'
      if (this.reserved(peer) + total > this.limits.maxPeerBytes) return 'peer-budget'
      if (this.totalBytes + total > this.limits.maxTotalBytes) return 'total-budget'
      return undefined
    }
    let refused = fits()
    if (refused) {
      this.dropIdle()
      refused = fits()
    }
    if (refused) return refused
    this.peerBytes.set(peer, this.reserved(peer) + total)
    this.totalBytes += total
    return undefined
  }

  private dropIdle(): void {
    const before = this.now() - this.limits.idleMs
    for (const [peer, transfers] of this.byPeer) for (const t of [...transfers.values()]) if (t.at <= before) this.end(peer, t)
  }

  private end(peer: string, transfer: Transfer): void {
    const transfers = this.byPeer.get(peer)
    if (!transfers?.delete(transfer.id)) return
    if (transfers.size === 0) this.byPeer.delete(peer)
    this.peerBytes.set(peer, this.reserved(peer) - transfer.total)
    this.totalBytes -= transfer.total
  }

  private drop(why: DropReason): ChunkOutcome {
    this.dropped[why]++
    return { t: 'dropped', why }
  }
}
