import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { MallaError } from '../../core/errors.js'
import { isTypeName } from '../../core/schema.js'
import type { TableRef, TableStore, StoredTable } from '../../storage/table-store.js'
import { refKey } from '../../storage/table-store.js'
import { KeyedMutex } from '../../storage/mutex.js'
import type { Logger } from '../../core/log.js'
import { silentLogger } from '../../core/log.js'

export interface FileStoreOptions {
  /** How long a writer waits for another one's lock before failing with LOCK_FAILED (LibreMesh waits 10 s). */
  readonly lockWaitMs?: number
  /** A lock whose holder stopped refreshing it for this long (it crashed) is taken over. */
  readonly staleLockMs?: number
  readonly log?: Logger
}

/**
 * Tables as JSON files in LibreMesh's layout: `DIR/<type>.json` holds exactly the table object, and
 * multi-writer tables live in `DIR/multiwriter/<type>.json` (LibreMesh keeps them in a directory of their own).
 *
 * Writes are atomic and durable: a temporary file is written and fsynced, renamed over the old one, and the
 * directory is fsynced, so a crash at any moment leaves either the old or the new table, never a mix, and a
 * save that resolved survives `kill -9` and power loss. Writers in several processes (the daemon and the CLI)
 * exclude each other with a lock directory per table, which a crashed holder cannot keep forever.
 */
export class FileStore implements TableStore {
  private readonly mutex = new KeyedMutex()
  private readonly lockWaitMs: number
  private readonly staleLockMs: number
  private readonly log: Logger

  constructor(
    readonly dir: string,
    options: FileStoreOptions = {},
  ) {
    this.lockWaitMs = options.lockWaitMs ?? 10_000
    this.staleLockMs = Math.max(2000, options.staleLockMs ?? 3000)
    this.log = options.log ?? silentLogger
  }

  path(ref: TableRef): string {
    return ref.flavour === 'ttl' ? join(this.dir, `${ref.type}.json`) : join(this.dir, 'multiwriter', `${ref.type}.json`)
  }

  async list(): Promise<TableRef[]> {
    const refs: TableRef[] = []
    for (const [flavour, dir] of [['ttl', this.dir], ['multiwriter', join(this.dir, 'multiwriter')]] as const) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const type = name.endsWith('.json') ? name.slice(0, -5) : ''
        if (isTypeName(type)) refs.push({ flavour, type })
      }
    }
    return refs.sort((a, b) => refKey(a).localeCompare(refKey(b)))
  }

  async load(ref: TableRef): Promise<StoredTable> {
    const path = this.path(ref)
    // Read and stat the same open file, so the version always describes the text returned.
    const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined
      throw e
    })
    if (fh === undefined) return { text: undefined, version: 'absent' }
    try {
      const st = await fh.stat({ bigint: true })
      const text = await fh.readFile('utf8')
      return { text, version: `${st.ino}:${st.size}:${st.mtimeNs}` }
    } finally {
      await fh.close()
    }
  }

  async version(ref: TableRef): Promise<string> {
    try {
      const st = await stat(this.path(ref), { bigint: true })
      return `${st.ino}:${st.size}:${st.mtimeNs}`
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent'
      throw e
    }
  }

  async save(ref: TableRef, text: string): Promise<string> {
    const path = this.path(ref)
    const dir = ref.flavour === 'ttl' ? this.dir : join(this.dir, 'multiwriter')
    await mkdir(dir, { recursive: true })
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
    try {
      const fh = await open(tmp, 'wx', 0o644)
      try {
        await fh.writeFile(text, 'utf8')
        await fh.sync()
      } finally {
        await fh.close()
      }
      const st = await stat(tmp, { bigint: true })
      await rename(tmp, path)
      await syncDir(dir)
      return `${st.ino}:${st.size}:${st.mtimeNs}`
    } catch (e) {
      await unlink(tmp).catch(() => {})
      const err = e as NodeJS.ErrnoException
      throw new MallaError('STORAGE', `cannot save ${path}: ${err.code ?? err.message} (the previous copy is intact)`, { cause: e })
    }
  }

  async lock(ref: TableRef): Promise<() => Promise<void>> {
    const releaseLocal = await this.mutex.acquire(refKey(ref))
    const path = this.path(ref)
    try {
      await mkdir(join(path, '..'), { recursive: true })
      const steps = Math.max(1, Math.ceil(this.lockWaitMs / 100))
      const releaseFile = await lockfile.lock(path, {
        realpath: false,
        stale: this.staleLockMs,
        update: Math.floor(this.staleLockMs / 2),
        retries: { retries: steps, factor: 1, minTimeout: 100, maxTimeout: 100 },
        onCompromised: (err) => this.log.error('table lock compromised', { path, error: err.message }),
      })
      return async () => {
        try {
          await releaseFile()
        } catch (e) {
          this.log.warn('table lock release failed', { path, error: (e as Error).message })
        } finally {
          releaseLocal()
        }
      }
    } catch (e) {
      releaseLocal()
      if ((e as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new MallaError('LOCK_FAILED', `${path} stayed locked by another writer for ${this.lockWaitMs} ms`, { cause: e })
      }
      throw new MallaError('STORAGE', `cannot lock ${path}: ${(e as Error).message}`, { cause: e })
    }
  }

  async quarantine(ref: TableRef, reason: string): Promise<string> {
    const path = this.path(ref)
    const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
    try {
      await rename(path, aside)
      await syncDir(join(path, '..'))
    } catch (e) {
      // Another process moved it first: the table is already empty.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
    this.log.warn('moved corrupt table aside', { path, to: aside, reason })
    return aside
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Reads a small text file, or undefined when it does not exist. */
export async function readOptional(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)))
}
