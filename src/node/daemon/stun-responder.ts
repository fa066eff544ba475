import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIPv6 } from 'node:net'
import type stunModule from 'stun'
import { MallaError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'

/** RFC 5389 §6: a 20-byte header whose second word is this cookie; RFC 3489 messages lack it. */
const HEADER_BYTES = 20
const MAGIC_COOKIE = 0x2112a442
/**
 * Browsers' Binding requests are well under 100 bytes. Anything larger than the smallest IPv6 MTU is not
 * a request for us, and is dropped before it is decoded, so a flood of large datagrams costs little.
 */
const MAX_REQUEST_BYTES = 1280
/** RFC 5389 §18.1 message types (the `stun` package's constants, needed before it is loaded). */
const STUN_BINDING_REQUEST = 0x0001
const STUN_BINDING_RESPONSE = 0x0101

/**
 * The `stun` codec, loaded at the first Binding request: it costs ~5 MB of memory, which a daemon whose pages
 * never ask (routers without browsers, CLI peers) should not pay.
 */
let codec: Promise<typeof stunModule> | undefined
const loadCodec = (): Promise<typeof stunModule> => (codec ??= import('stun').then((m) => m.default))

export interface StunResponderOptions {
  /** UDP port; 0 picks a free one (read it back from `info()`). */
  readonly port: number
  /** The HTTP listener's address: on `::` the socket is dual-stack and answers IPv4 clients too. */
  readonly host: string
  readonly log: Logger
}

/** What `/malla/v1/info` says of the responder, so pages can build `stun:<their router>:<port>`. */
export interface StunInfo {
  readonly port: number
  /** Binding requests answered since start. */
  readonly answered: number
  /** Datagrams dropped unanswered (not STUN, not a Binding request, malformed, too large). */
  readonly ignored: number
}

/**
 * A STUN server that does RFC 5389 Binding and nothing else: it tells each client the address and port
 * its request came from (XOR-MAPPED-ADDRESS). Browsers hide their host candidates behind mDNS `.local`
 * names, which do not resolve across routed mesh segments; asking their router for a Binding gives them a
 * server-reflexive candidate with the address other nodes can actually reach.
 *
 * It uses the `stun` package's codec only, not its `StunServer`: that class treats a request of any method
 * (Allocate, say) as a Binding request, decodes every datagram whose first byte is 0-3 whatever its size or
 * cookie, emits an `error` event (fatal when unheard) per garbage datagram, and hides its socket, so an
 * ephemeral port could not be read back.
 */
export class StunResponder {
  private socket: Socket | undefined
  private stopped = false
  private answered = 0
  private ignored = 0

  constructor(private readonly options: StunResponderOptions) {}

  /**
   * Binds the UDP socket and resolves with its port. A port that is taken or not allowed rejects with
   * `MallaError('BAD_INPUT')` (it is the `--stun-port` option that is wrong) and leaves nothing open.
   */
  async start(): Promise<number> {
    const { host, port, log } = this.options
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' })
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject)
        socket.bind({ port, address: host }, () => {
          socket.off('error', reject)
          resolve()
        })
      })
    } catch (e) {
      closeQuietly(socket)
      throw new MallaError('BAD_INPUT', bindFailure(e as NodeJS.ErrnoException, host, port), { cause: e })
    }
    // A daemon stopped while the bind was under way must not keep the socket.
    if (this.stopped) {
      closeQuietly(socket)
      throw new MallaError('BAD_INPUT', 'the daemon stopped before the STUN responder started')
    }
    // An unheard 'error' event kills the process: a socket failure may cost the responder, never the daemon.
    socket.on('error', (e) => log.warn('stun socket error', { error: e.message }))
    socket.on('message', (datagram, from) => this.onDatagram(socket, datagram, from))
    this.socket = socket
    return socket.address().port
  }

  /** Undefined until started, and after stop. */
  info(): StunInfo | undefined {
    if (!this.socket) return undefined
    return { port: this.socket.address().port, answered: this.answered, ignored: this.ignored }
  }

  /** The ICE server URL a client on this host would use, e.g. `stun:127.0.0.1:3478`, for the log. */
  url(): string | undefined {
    const info = this.info()
    if (!info) return undefined
    const host = this.options.host === '::' ? '::1' : this.options.host
    return `stun:${isIPv6(host) ? `[${host}]` : host}:${info.port}`
  }

  async stop(): Promise<void> {
    this.stopped = true
    const socket = this.socket
    this.socket = undefined
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()))
  }

  private onDatagram(socket: Socket, datagram: Buffer, from: RemoteInfo): void {
    const unfit = unfitRequest(datagram)
    if (unfit !== undefined) return this.ignore(datagram, from, unfit)
    loadCodec().then(
      (stun) => {
        if (this.socket !== socket) return // stopped meanwhile
        const unanswered = this.answer(stun, socket, datagram, from)
        if (unanswered === undefined) this.answered++
        else this.ignore(datagram, from, unanswered)
      },
      (e: Error) => this.ignore(datagram, from, `cannot load the STUN codec: ${e.message}`),
    )
  }

  private ignore(datagram: Buffer, from: RemoteInfo, reason: string): void {
    this.ignored++
    this.options.log.debug('stun datagram ignored', { from: from.address, port: from.port, bytes: datagram.length, reason })
  }

  /** Answers a Binding request that passed `unfitRequest`; otherwise returns why it got no answer. */
  private answer(stun: typeof stunModule, socket: Socket, datagram: Buffer, from: RemoteInfo): string | undefined {
    let request: ReturnType<typeof stun.decode>
    try {
      request = stun.decode(datagram)
    } catch (e) {
      return `malformed attributes: ${(e as Error).message}`
    }
    // A throw here would escape the socket's 'message' handler and kill the daemon, whatever the datagram.
    try {
      const response = stun.createMessage(STUN_BINDING_RESPONSE, Buffer.from(request.transactionId))
      response.addXorAddress(reflexiveAddress(from.address), from.port)
      socket.send(response.toBuffer(), from.port, from.address, (e) => {
        if (e) this.options.log.debug('stun answer not sent', { to: from.address, port: from.port, error: e.message })
      })
    } catch (e) {
      return `cannot answer: ${(e as Error).message}`
    }
    return undefined
  }
}

/** Why a datagram is not a Binding request worth decoding (RFC 5389 §7.3: silently discarded), or undefined. */
function unfitRequest(datagram: Buffer): string | undefined {
  if (datagram.length > MAX_REQUEST_BYTES) return 'too large'
  // The header checks of RFC 5389 §7.3, done here because the codec skips them: the two top bits are
  // zero, the cookie is there, and the length field covers exactly the rest, in 4-byte words.
  if (
    datagram.length < HEADER_BYTES ||
    (datagram[0]! & 0xc0) !== 0 ||
    datagram.readUInt32BE(4) !== MAGIC_COOKIE ||
    datagram.readUInt16BE(2) !== datagram.length - HEADER_BYTES ||
    datagram.length % 4 !== 0
  ) {
    return 'not an RFC 5389 STUN message'
  }
  if (datagram.readUInt16BE(0) !== STUN_BINDING_REQUEST) return 'not a Binding request'
  return undefined
}

/**
 * The client's address as the client itself knows it. A dual-stack socket sees an IPv4 client as
 * `::ffff:a.b.c.d`; answered that way, a browser would get an IPv6 candidate that its IPv4 socket never
 * has. A zone (`%br-lan`) names an interface of this host, meaningless to the client.
 */
export function reflexiveAddress(address: string): string {
  const bare = address.split('%', 1)[0] ?? address
  const v4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare)
  return v4?.[1] ?? bare
}

function bindFailure(e: NodeJS.ErrnoException, host: string, port: number): string {
  const where = `UDP ${isIPv6(host) ? `[${host}]` : host}:${port}`
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the port is in use (another STUN server?); choose another --stun-port, or --no-stun`
    case 'EACCES':
      return `cannot listen on ${where}: not allowed (ports below 1024 need root); choose another --stun-port, or --no-stun`
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: ${host} is not an address of this host`
    default:
      return `cannot listen on ${where}: ${e.message}`
  }
}

function closeQuietly(socket: Socket): void {
  try {
    socket.close()
  } catch {
    // Not running (the bind never completed): there is nothing to close.
  }
}
