import { type FileHandle, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { MallaError } from '../../core/errors.js'
import { compareStrings } from '../../core/order.js'
import { isTypeName, serializeTableChunks } from '../../core/schema.js'
import type { TypeName } from '../../core/types.js'
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
  /**
   * Whether small changes may go to a journal beside the table file (the daemon: fast, and compacted into
   * the file once the table is quiet). Without it every write rewrites the whole file, as LibreMesh does:
   * right for the CLI, which has no later moment to compact in.
   */
  readonly journal?: boolean
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
    if (options.journal === false) this.append = undefined
  }

  path(ref: TableRef): string {
    return ref.flavour === 'ttl' ? join(this.dir, `${ref.type}.json`) : join(this.dir, 'multiwriter', `${ref.type}.json`)
  }

  async list(): Promise<TableRef[]> {
    const refs: TableRef[] = []
    for (const [flavour, dir] of [['ttl', this.dir], ['multiwriter', join(this.dir, 'multiwriter')]] as const) {
      const types = new Set<string>()
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        // A new table may so far exist only as a journal, until its first compaction.
        const type = name.endsWith('.json') ? name.slice(0, -5) : name.endsWith('.json.journal') ? name.slice(0, -13) : ''
        if (isTypeName(type)) types.add(type)
      }
      for (const type of types) refs.push({ flavour, type: type as TypeName })
    }
    // Code-unit order, not localeCompare: the same on every machine, and collation would load ICU's data (~3 MB of a router's memory).
    return refs.sort((a, b) => compareStrings(refKey(a), refKey(b)))
  }

  async load(ref: TableRef): Promise<StoredTable> {
    const path = this.path(ref)
    // Read and stat the same open file, so the version always describes the text returned.
    const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined
      throw e
    })
    let text: string | undefined
    let base = 'absent'
    if (fh !== undefined) {
      try {
        const st = await fh.stat({ bigint: true })
        text = await fh.readFile('utf8')
        base = `${st.ino}:${st.size}:${st.mtimeNs}`
      } finally {
        await fh.close()
      }
    }
    const journalText = (await readOptional(journalPath(path))) ?? ''
    const journal = journalRecords(journalText, baseId(base))
    const version = versionOf(base, Buffer.byteLength(journalText))
    return journal.length > 0 ? { text, journal, version } : { text, version }
  }

  async version(ref: TableRef): Promise<string> {
    const path = this.path(ref)
    const [base, journal] = await Promise.all([statId(path), statId(journalPath(path))])
    return versionOf(base, journal === 'absent' ? 0 : Number(journal.split(':')[1]))
  }

  append? = async (ref: TableRef, record: string): Promise<{ version: string; journalBytes: number }> => {
    const path = this.path(ref)
    const jpath = journalPath(path)
    const base = await statId(path)
    try {
      // A journal belongs to one base file: one left over from a save that crashed before removing it
      // names an older base and is started afresh rather than appended to.
      const header = await readFirstLine(jpath)
      if (header !== JSON.stringify({ base: baseId(base) })) {
        const tmp = `${jpath}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
        await writeDurably(tmp, `${JSON.stringify({ base: baseId(base) })}\n`)
        await rename(tmp, jpath)
        await syncDir(join(path, '..'))
      }
      const fh = await open(jpath, 'a+')
      let size: bigint
      try {
        await cutTornTail(fh)
        const before = (await fh.stat({ bigint: true })).size
        try {
          await fh.write(`${record}\n`)
          await fh.datasync()
        } catch (e) {
          // A record cut short (a full disk) must not stay: the next one would be appended to its torn end.
          await fh.truncate(Number(before)).catch(() => {})
          throw e
        }
        size = (await fh.stat({ bigint: true })).size
      } finally {
        await fh.close()
      }
      return { version: versionOf(base, Number(size)), journalBytes: Number(size) }
    } catch (e) {
      const err = e as NodeJS.ErrnoException
      throw new MallaError('STORAGE', `cannot append to ${jpath}: ${err.code ?? err.message} (the previous copy is intact)`, { cause: e })
    }
  }

  async save(ref: TableRef, text: string): Promise<string> {
    return this.replace(ref, [text])
  }

  async saveTable(ref: TableRef, table: ReadonlyMap<string, object>): Promise<{ version: string; bytes: number }> {
    const version = await this.replace(ref, serializeTableChunks(table))
    return { version, bytes: Number(version.split(':')[1]) }
  }

  /** Writes the table's new text from `pieces` into a temporary file, then renames it over the table's file. */
  private async replace(ref: TableRef, pieces: Iterable<string>): Promise<string> {
    const path = this.path(ref)
    const dir = ref.flavour === 'ttl' ? this.dir : join(this.dir, 'multiwriter')
    await mkdir(dir, { recursive: true })
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
    try {
      await writeDurably(tmp, pieces)
      const st = await stat(tmp, { bigint: true })
      await rename(tmp, path)
      await syncDir(dir)
      // The new base holds every change: its journal goes. A crash before this leaves a journal naming the
      // old base, which load ignores.
      await unlink(journalPath(path)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)))
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

  async setAside(ref: TableRef, text: string, reason: string): Promise<string> {
    const path = this.path(ref)
    // Named by content, so a table read again after a restart does not leave the same parts twice.
    const aside = `${path}.unreadable-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`
    try {
      await mkdir(join(path, '..'), { recursive: true })
      await writeDurably(aside, text)
      await syncDir(join(path, '..'))
    } catch (e) {
      const err = e as NodeJS.ErrnoException
      if (err.code === 'EEXIST') return aside
      throw new MallaError('STORAGE', `cannot keep the unreadable parts of ${path} in ${aside}: ${err.code ?? err.message}`, { cause: e })
    }
    this.log.warn('unreadable parts of a table kept aside', { path, to: aside, reason })
    return aside
  }

  /**
   * Removes temporary files that writers killed mid-save left behind (a full copy of a table each). A file
   * whose writer is still running (another process saving right now) is left alone. Returns what it removed.
   */
  async removeStaleTemps(): Promise<string[]> {
    const removed: string[] = []
    for (const dir of [this.dir, join(this.dir, 'multiwriter')]) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const m = /\.json(?:\.journal)?\.tmp-(\d+)-[a-z0-9]*$/.exec(name)
        if (!m || processAlive(Number(m[1]))) continue
        await unlink(join(dir, name)).then(
          () => removed.push(join(dir, name)),
          (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)),
        )
      }
    }
    return removed
  }
}

/** Whether a process with this id runs on this machine (EPERM: it does, as another user). */
function processAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const journalPath = (path: string) => `${path}.journal`

/** A table's version: its base file's identity, plus its journal's size when it has one. */
const versionOf = (base: string, journalBytes: number) => (journalBytes > 0 ? `${base}|${journalBytes}` : base)

/** The part of a base file's version that a journal is tied to (inode and size; 'absent' when none). */
const baseId = (version: string) => version.split(':').slice(0, 2).join(':')

async function statId(path: string): Promise<string> {
  try {
    const st = await stat(path, { bigint: true })
    return `${st.ino}:${st.size}:${st.mtimeNs}`
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent'
    throw e
  }
}

/** The complete records of a journal tied to `base`; a journal of another base, or a torn last line, is not used. */
function journalRecords(text: string, base: string): string[] {
  const lines = text.split('\n')
  lines.pop() // the part after the last newline: empty, or a record whose append never completed
  if (lines[0] !== JSON.stringify({ base })) return []
  return lines.slice(1)
}

/** Drops an unfinished last record (a crash mid-append) so the next record starts on a line of its own. */
async function cutTornTail(fh: FileHandle): Promise<void> {
  const size = Number((await fh.stat()).size)
  if (size === 0) return
  const last = Buffer.alloc(1)
  await fh.read(last, 0, 1, size - 1)
  if (last[0] === 0x0a) return
  const text = (await fh.readFile()).toString('utf8')
  await fh.truncate(Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)))
}

async function readFirstLine(path: string): Promise<string | undefined> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)))
  if (fh === undefined) return undefined
  try {
    const buf = Buffer.alloc(256)
    const { bytesRead } = await fh.read(buf, 0, 256, 0)
    const text = buf.subarray(0, bytesRead).toString('utf8')
    const nl = text.indexOf('\n')
    return nl < 0 ? undefined : text.slice(0, nl)
  } finally {
    await fh.close()
  }
}

/** Writes a new file (it must not exist) from text or text in pieces and fsyncs it; `mode` applies from its creation on. */
export async function writeDurably(path: string, text: string | Iterable<string>, mode = 0o644): Promise<void> {
  const fh = await open(path, 'wx', mode)
  try {
    if (typeof text === 'string') await fh.writeFile(text, 'utf8')
    else for (const piece of text) await fh.write(piece, null, 'utf8')
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export async function syncDir(dir: string): Promise<void> {
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
