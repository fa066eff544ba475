import { MallaError } from '../core/errors.js'
import { concatBytes } from './http-poster.js'

/** gzip with the platform's CompressionStream (browsers and Node 18+), so this stays isomorphic. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipeThrough(bytes, new CompressionStream('gzip'), Infinity)
}

/** gunzip, refusing output over `maxBytes` (a small compressed body can expand enormously). */
export async function gunzip(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  return pipeThrough(bytes, new DecompressionStream('gzip'), maxBytes)
}

export const isGzip = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b

async function pipeThrough(bytes: Uint8Array, transform: TransformStream<BufferSource, Uint8Array>, max: number): Promise<Uint8Array> {
  const writer = transform.writable.getWriter()
  const written = writer.write(bytes as BufferSource).then(() => writer.close())
  const reader = transform.readable.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
      if (total > max) {
        await reader.cancel()
        throw new MallaError('TOO_LARGE', `decompressed body is over the ${max} byte limit`)
      }
      chunks.push(value)
    }
    await written
  } catch (e) {
    written.catch(() => {})
    if (e instanceof MallaError) throw e
    throw new MallaError('BAD_INPUT', `bad gzip data: ${(e as Error).message}`, { cause: e })
  }
  return concatBytes(chunks, total)
}
