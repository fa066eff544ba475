import { link, open, unlink, type FileHandle } from 'node:fs/promises'
import { MallaError } from '../../core/errors.js'
import type { FileSink, FileSource } from '../../files/transfer.js'

/** A file on disk as something to send. Its size is taken when it is opened; the transfer closes it. */
export async function fileSource(path: string): Promise<FileSource> {
  const handle = await storage(`opening ${path}`, () => open(path, 'r'))
  const { size } = await storage(`reading the size of ${path}`, () => handle.stat()).catch(async (e: unknown) => {
    await handle.close()
    throw e
  })
  return {
    size,
    async read(offset, length) {
      const buffer = new Uint8Array(length)
      const { bytesRead } = await handle.read(buffer, 0, length, offset)
      return buffer.subarray(0, bytesRead)
    },
    close: () => handle.close(),
  }
}

/**
 * A sink that writes a received file to `path`. The bytes go to `path.part` first, and become `path` only once
 * the transfer is done (a link, so an existing `path` is never overwritten: close() then fails); an aborted
 * transfer leaves nothing behind. Refuses (STORAGE) a `path.part` that exists already.
 */
export async function fileSink(path: string): Promise<FileSink> {
  const partial = `${path}.part`
  const handle: FileHandle = await storage(`creating ${partial}`, () => open(partial, 'wx'))
  let closed = false
  const drop = async () => {
    if (!closed) await handle.close().catch(() => {})
    closed = true
    await unlink(partial).catch(() => {})
  }
  return {
    async write(chunk) {
      for (let at = 0; at < chunk.byteLength; ) at += (await handle.write(chunk, at, chunk.byteLength - at)).bytesWritten
    },
    async close() {
      closed = true
      await handle.close()
      try {
        await storage(`saving ${path}`, () => link(partial, path))
      } finally {
        await unlink(partial).catch(() => {})
      }
    },
    abort: () => void drop(),
  }
}

async function storage<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op()
  } catch (e) {
    throw new MallaError('STORAGE', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
}
