import { badInput, MallaError } from '../core/errors.js'
import { silentLogger, type Logger } from '../core/log.js'
import type { JsonValue } from '../rtc/framed-channel.js'
import type { Mesh, MeshPeer } from '../signaling/mesh.js'
import type { MessageRouter } from './message-router.js'

export interface DirectConnectorOptions {
  readonly mesh: Mesh
  readonly messages: MessageRouter
  readonly id: string
  /** From asking to the answer's arrival, at most (default 15 s); the connection then has the mesh's connect timeout. */
  readonly answerTimeoutMs?: number
  /**
   * For a peer with an identity: offers and answers go encrypted to the other person's key and signed by this
   * one's (§15.4), whenever the other peer has a key; and a description in clear is taken only from a peer
   * that `plainFrom` allows (one without a key, when the app accepts unsigned peers).
   */
  readonly sealing?: Sealing
  readonly log?: Logger
}

/** How directed offers and answers are sealed, for a peer with an identity (see `join`). */
export interface Sealing {
  /** `text` encrypted to `peer`'s key and signed, or undefined when `peer` has no key. */
  seal(peer: string, text: string): Promise<string | undefined>
  /** The text of a sealed message from `peer`; rejects when it is not theirs, or not for this key. */
  open(peer: string, armored: string): Promise<string>
  /** Whether a description in clear from `peer` is taken. */
  plainFrom(peer: string): boolean
}

/** Directed offers this peer answers at once; more are refused (busy) until those are done. */
const MAX_ANSWERING = 4
/** Directed connections this peer waits on at once. */
const MAX_ASKING = 16

/**
 * Connections to a chosen peer (docs/protocol.md §15.4): the offer travels to it as one of the overlay's routed
 * messages (`sig` `offer`), its answer comes back the same way (`answer`, or `refuse`), and the connection opens
 * directly between the two, whatever routers and overlay hops lay between them. Nothing goes through the
 * routers' tables.
 */
export class DirectConnector {
  private readonly waiting = new Map<string, { resolve: (answer: unknown) => void; reject: (e: MallaError) => void }>()
  private answering = 0
  private next = 1
  private off: (() => void) | undefined
  private readonly log: Logger

  constructor(private readonly options: DirectConnectorOptions) {
    this.log = options.log ?? silentLogger
  }

  start(): void {
    this.off = this.options.messages.on('signal', (from, sig) => this.received(from, sig))
  }

  stop(): void {
    this.off?.()
    for (const w of this.waiting.values()) w.reject(new MallaError('PEER', 'the room was left'))
    this.waiting.clear()
  }

  /**
   * A direct connection to `peerId` (the existing one if there is one). Rejects with BAD_INPUT for this peer's
   * own id, BUSY when either side holds too many connections, PEER when the peer is not reachable over the
   * overlay, refuses, or the connection does not open.
   */
  connect(peerId: string): Promise<MeshPeer> {
    if (peerId === this.options.id) return Promise.reject(badInput('a peer cannot connect to itself'))
    if (this.waiting.size >= MAX_ASKING) return Promise.reject(new MallaError('BUSY', `${MAX_ASKING} directed connections are under way already`))
    return this.options.mesh.connectTo(peerId, async (offer) => {
      const n = String(this.next++)
      const key = `${peerId}/${n}`
      const ms = this.options.answerTimeoutMs ?? 15_000
      let timer: ReturnType<typeof setTimeout> | undefined
      const answered = new Promise<unknown>((resolve, reject) => {
        this.waiting.set(key, { resolve, reject })
        timer = setTimeout(() => reject(new MallaError('PEER', `no answer from ${peerId} within ${ms} ms`)), ms)
      }).finally(() => {
        clearTimeout(timer)
        this.waiting.delete(key)
      })
      answered.catch(() => {})
      await this.options.messages.signal(peerId, { t: 'offer', n, ...(await this.wrap(peerId, offer)) })
      return answered
    })
  }

  /** A description as it travels: sealed to `peer` when this peer and `peer` have keys, else in clear (`s`). */
  private async wrap(peer: string, description: unknown): Promise<{ e: string } | { s: JsonValue }> {
    const sealed = await this.options.sealing?.seal(peer, JSON.stringify(description))
    return sealed !== undefined ? { e: sealed } : { s: description as JsonValue }
  }

  /** The description a message carries, opened; rejects (BAD_INPUT) for one this peer does not take. */
  private async unwrap(peer: string, sig: Record<string, unknown>): Promise<unknown> {
    const sealing = this.options.sealing
    if (typeof sig.e === 'string') {
      if (!sealing) throw badInput('a sealed description, and this peer has no key to open it')
      return JSON.parse(await sealing.open(peer, sig.e)) as unknown
    }
    if (sealing && !sealing.plainFrom(peer)) throw badInput(`a description in clear from ${peer}, who must seal it`)
    return sig.s
  }

  private received(from: string, sig: { readonly t: string } & Record<string, unknown>): void {
    const n = typeof sig.n === 'string' && sig.n.length <= 20 ? sig.n : undefined
    if (n === undefined) return
    if (sig.t === 'offer') return this.answer(from, n, sig)
    const w = this.waiting.get(`${from}/${n}`)
    if (w === undefined) return
    if (sig.t === 'answer') this.unwrap(from, sig).then(w.resolve, (e: Error) => w.reject(new MallaError('PEER', `${from}'s answer: ${e.message}`)))
    else if (sig.t === 'refuse') w.reject(new MallaError(sig.busy === true ? 'BUSY' : 'PEER', `${from} refused the connection: ${String(sig.why ?? 'no reason').slice(0, 200)}`))
  }

  private answer(from: string, n: string, sig: Record<string, unknown>): void {
    const { mesh, messages } = this.options
    const refuse = (why: string, busy: boolean) => void messages.signal(from, { t: 'refuse', n, why, busy }).catch(() => {})
    if (this.answering >= MAX_ANSWERING) return refuse('too many directed offers at once', true)
    this.answering++
    void this.unwrap(from, sig)
      .then((offer) => mesh.acceptDirect(from, offer))
      .then(
        async (answer) => messages.signal(from, { t: 'answer', n, ...(await this.wrap(from, answer)) }),
        (e: MallaError) => {
          this.log.debug('directed offer refused', { from, error: e.message })
          refuse(e.message, e.code === 'BUSY')
        },
      )
      .catch((e: Error) => this.log.debug('could not send a directed answer', { to: from, error: e.message }))
      .finally(() => this.answering--)
  }
}
