import { spawn } from 'node:child_process'
import { access, constants, readdir, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from '../../core/log.js'
import type { TypeName } from '../../core/types.js'

/** All a hook's environment: where programs are, OpenWrt's and Debian's alike, and a locale that reads UTF-8. */
const HOOK_ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' }

export interface HookRunnerOptions {
  /** `DIR/<type>/` holds the hooks of each type, as `/etc/shared-state/hooks/<type>/` on a router. */
  readonly dir: string
  /** A hook still running after this long is killed (SIGKILL). */
  readonly timeoutMs: number
  readonly log: Logger
}

/**
 * Runs LibreMesh-style hooks: after a substantial change to a type, every executable in `DIR/<type>/`
 * gets the whole table as JSON on stdin. Hooks run in the background, one round per type at a time;
 * changes that arrive during a round are folded into one more round with the latest table, so a slow
 * hook delays only its own type's hooks and a hung one is killed, never blocking the daemon.
 */
export class HookRunner {
  private readonly running = new Map<string, Promise<void>>()
  private readonly again = new Map<string, () => Promise<string>>()

  constructor(private readonly options: HookRunnerOptions) {}

  /** Schedules a round for `type`; `table` is read when the round starts, so it is the latest. */
  trigger(type: TypeName, table: () => Promise<string>): void {
    if (this.running.has(type)) {
      this.again.set(type, table)
      return
    }
    const round = this.round(type, table).finally(() => {
      this.running.delete(type)
      const next = this.again.get(type)
      if (next) {
        this.again.delete(type)
        this.trigger(type, next)
      }
    })
    this.running.set(type, round)
  }

  /** Resolves when no round is running or pending (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()])
  }

  private async round(type: TypeName, table: () => Promise<string>): Promise<void> {
    const hooks = await this.hooksOf(type)
    if (hooks.length === 0) return
    let json: string
    try {
      json = await table()
    } catch (e) {
      this.options.log.error('hook input unavailable', { type, error: (e as Error).message })
      return
    }
    for (const hook of hooks) await this.runOne(type, hook, json)
  }

  private async hooksOf(type: TypeName): Promise<string[]> {
    const dir = join(this.options.dir, type)
    const names = await readdir(dir).catch(() => [] as string[])
    const hooks: string[] = []
    for (const name of names.sort()) {
      const path = join(dir, name)
      const st = await stat(path).catch(() => undefined)
      if (!st?.isFile()) continue
      if (await access(path, constants.X_OK).then(() => true, () => false)) hooks.push(path)
    }
    return hooks
  }

  private runOne(type: TypeName, path: string, json: string): Promise<void> {
    const started = Date.now()
    return new Promise<void>((resolve) => {
      // Its own process group, so a timeout kills whatever the hook started too. No shell, no arguments, and a
      // clean environment: a hook sees the table on stdin and nothing of the daemon's environment (tokens, paths,
      // NODE_OPTIONS) nor anything a sender chose; it starts in its type's hook directory.
      const child = spawn(path, [], { stdio: ['pipe', 'ignore', 'pipe'], detached: true, cwd: dirname(path), env: HOOK_ENV })
      let stderr = ''
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
        } catch {
          child.kill('SIGKILL')
        }
      }, this.options.timeoutMs)
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 2000) stderr += d.toString()
      })
      // A hook that exits without reading stdin closes the pipe: that is its business, not an error.
      child.stdin.on('error', () => {})
      child.stdin.end(json)
      child.on('error', (e) => {
        clearTimeout(timer)
        this.options.log.error('hook could not start', { type, hook: path, error: e.message })
        resolve()
      })
      // 'exit', not 'close': a grandchild still holding stderr must not keep the round waiting.
      child.on('exit', (code, signal) => {
        clearTimeout(timer)
        const ms = Date.now() - started
        if (timedOut) this.options.log.error('hook killed after timeout', { type, hook: path, ms, timeoutMs: this.options.timeoutMs })
        else if (code !== 0) this.options.log.warn('hook failed', { type, hook: path, code, signal, ms, stderr: stderr.trim() || undefined })
        else this.options.log.debug('hook ran', { type, hook: path, ms })
        resolve()
      })
    })
  }
}
