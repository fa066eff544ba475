import type { IncomingMessage } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { MallaError } from '../../core/errors.js'

/**
 * Reads a request body up to `maxBytes`, whether it came with a Content-Length or chunked (as the
 * routers' uclient-fetch sends it). A gzip body is inflated under the same limit, so a small
 * compressed body cannot expand into a large allocation. `charge` is called with every chunk's size
 * before it is kept (a sender's byte budget: it throws to refuse). `advice`, when given, is added to a
 * TOO_LARGE error: what the operator can do about it.
 */
export async function readBody(req: IncomingMessage, maxBytes: number, gzipped: boolean, charge?: (bytes: number) => void, advice?: string): Promise<string> {
  const tooLarge = (what: string) => new MallaError('TOO_LARGE', `${what} is over the ${maxBytes} byte limit${advice ? ` (${advice})` : ''}`)
  const declared = Number(req.headers['content-length'] ?? '0')
  if (declared > maxBytes) throw tooLarge(`body of ${declared} bytes`)
  // A declared length is charged whole, before anything is read: a sender whose budget cannot take it is
  // refused without spending any, so it can send the same body again once its budget has refilled.
  if (declared > 0) charge?.(declared)
  const chunks: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.byteLength
      if (total > maxBytes) throw tooLarge('body')
      if (total > declared) charge?.(Math.min(chunk.byteLength, total - declared))
      chunks.push(chunk)
    }
  } catch (e) {
    if (e instanceof MallaError) throw e
    // The client went away mid-upload, or sent a broken chunked body: its request, not our disk.
    throw new MallaError('BAD_INPUT', `request body cut short: ${(e as Error).message}`, { cause: e })
  }
  const raw = Buffer.concat(chunks, total)
  if (!gzipped) return raw.toString('utf8')
  if (raw.byteLength === 0) return ''
  let inflated: Buffer
  try {
    inflated = gunzipSync(raw, { maxOutputLength: maxBytes })
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code === 'ERR_BUFFER_TOO_LARGE' || /larger than|maxOutputLength/i.test(err.message)) throw tooLarge('gzip body, inflated,')
    throw new MallaError('BAD_INPUT', `body is not valid gzip: ${err.message}`)
  }
  // What the inflation adds counts too: a small compressed body does the work of a large one.
  charge?.(Math.max(0, inflated.byteLength - total))
  return inflated.toString('utf8')
}
