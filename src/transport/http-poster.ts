import { MallaError } from '../core/errors.js'

/** What came back from one POST. */
export interface HttpReply {
  readonly status: number
  readonly headers: ReadonlyMap<string, string>
  readonly body: Uint8Array
}

export interface PostRequest {
  readonly url: string
  readonly body: Uint8Array
  readonly headers: Readonly<Record<string, string>>
  /** The whole exchange, connection to last byte, must end within this time (LibreMesh uses 3 s). */
  readonly timeoutMs: number
  /** Replies longer than this are refused. */
  readonly maxReplyBytes: number
}

/**
 * Carries one HTTP POST. The browser uses `fetch`; Node uses `node:http`, because only it can reach
 * IPv6 link-local peers (`http://[fe80::1%25br-lan]/`), whose zone the WHATWG URL parser rejects.
 * Implementations throw a `MallaError` with code PEER for anything that is not a complete reply.
 */
export interface HttpPoster {
  post(request: PostRequest): Promise<HttpReply>
}

/** `fetch`-based poster: browsers, and Node for ordinary addresses. */
export const fetchPoster: HttpPoster = {
  async post(req) {
    const signal = AbortSignal.timeout(req.timeoutMs)
    try {
      const res = await fetch(req.url, { method: 'POST', body: req.body as BodyInit, headers: req.headers, signal })
      const length = Number(res.headers.get('content-length') ?? '0')
      if (length > req.maxReplyBytes) {
        await res.body?.cancel()
        throw new MallaError('TOO_LARGE', `${req.url} answered ${length} bytes, over the ${req.maxReplyBytes} byte limit`)
      }
      const body = await readLimited(res.body, req.maxReplyBytes, req.url)
      const headers = new Map<string, string>()
      res.headers.forEach((value, name) => headers.set(name, value))
      return { status: res.status, headers, body }
    } catch (e) {
      if (e instanceof MallaError) throw e
      const reason = signal.aborted ? `no complete answer within ${req.timeoutMs} ms` : (e as Error).message
      throw new MallaError('PEER', `POST ${req.url} failed: ${reason}`, { cause: e })
    }
  },
}

async function readLimited(stream: ReadableStream<Uint8Array> | null, max: number, url: string): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array()
  const chunks: Uint8Array[] = []
  let total = 0
  const reader = stream.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > max) {
      await reader.cancel()
      throw new MallaError('TOO_LARGE', `${url} answered more than the ${max} byte limit`)
    }
    chunks.push(value)
  }
  return concatBytes(chunks, total)
}

export function concatBytes(chunks: readonly Uint8Array[], total = chunks.reduce((n, c) => n + c.byteLength, 0)): Uint8Array {
  const out = new Uint8Array(total)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.byteLength
  }
  return out
}
