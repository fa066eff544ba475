import type { IncomingMessage } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { MallaError } from '../../core/errors.js'

/**
 * Reads a request body up to `maxBytes`, whether it came with a Content-Length or chunked (as the
 * routers' uclient-fetch sends it). A gzip body is inflated under the same limit, so a small
 * compressed body cannot expand into a large allocation.
 */
export async function readBody(req: IncomingMessage, maxBytes: number, gzipped: boolean): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? '0')
  if (declared > maxBytes) throw new MallaError('TOO_LARGE', `body of ${declared} bytes is over the ${maxBytes} byte limit`)
  const chunks: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.byteLength
      if (total > maxBytes) throw new MallaError('TOO_LARGE', `body is over the ${maxBytes} byte limit`)
      chunks.push(chunk)
    }
  } catch (e) {
    if (e instanceof MallaError) throw e
    // The client went away mid-upload: its request, not our disk.
    throw new MallaError('PEER', `request body cut short: ${(e as Error).message}`, { cause: e })
  }
  const raw = Buffer.concat(chunks, total)
  if (!gzipped) return raw.toString('utf8')
  if (raw.byteLength === 0) return ''
  try {
    return gunzipSync(raw, { maxOutputLength: maxBytes }).toString('utf8')
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code === 'ERR_BUFFER_TOO_LARGE' || /larger than|maxOutputLength/i.test(err.message)) {
      throw new MallaError('TOO_LARGE', `gzip body inflates to more than the ${maxBytes} byte limit`)
    }
    throw new MallaError('BAD_INPUT', `body is not valid gzip: ${err.message}`)
  }
}
