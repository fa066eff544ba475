import { mkdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { MallaError } from '../../core/errors.js'
import type { KeyStore } from '../../identity/key-store.js'
import { syncDir, writeDurably } from '../storage/file-store.js'

/** The key file when none is named: `$MALLA_KEY`, else `$XDG_CONFIG_HOME/malla/key.asc` (`~/.config/malla/key.asc`). */
export function defaultKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MALLA_KEY) return env.MALLA_KEY
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'malla', 'key.asc')
}

/**
 * A secret key in one file, readable by its owner only (mode 0600, as ssh keeps its keys), written atomically
 * (a crash leaves the old key or the new one, never half of either). A key file others can read is refused
 * rather than used: whoever read it may be that person now.
 */
export class FileKeyStore implements KeyStore {
  constructor(readonly path: string) {}

  async load(): Promise<string | undefined> {
    let mode: number
    try {
      mode = (await stat(this.path)).mode
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw storageError(`cannot read ${this.path}`, e)
    }
    if (mode & 0o077) throw new MallaError('FORBIDDEN', `${this.path} can be read by others (mode ${(mode & 0o777).toString(8)}): run chmod 600 ${this.path} if nobody else could read it, or make a new key`)
    return readFile(this.path, 'utf8').catch((e) => Promise.reject(storageError(`cannot read ${this.path}`, e)))
  }

  async save(armoredSecret: string): Promise<void> {
    const dir = dirname(this.path)
    const tmp = `${this.path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      await writeDurably(tmp, armoredSecret, 0o600)
      await rename(tmp, this.path)
      await syncDir(dir)
    } catch (e) {
      await unlink(tmp).catch(() => {})
      throw storageError(`cannot save ${this.path} (the previous key is intact)`, e)
    }
  }

  async clear(): Promise<void> {
    await unlink(this.path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(storageError(`cannot remove ${this.path}`, e))))
  }
}

function storageError(what: string, e: unknown): MallaError {
  const err = e as NodeJS.ErrnoException
  return new MallaError('STORAGE', `${what}: ${err.code ?? err.message}`, { cause: e })
}
