import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Room } from '../../src/signaling/join.js'
import { startDaemon, type RunningDaemon } from './processes.js'

type TestContext = { after(fn: () => unknown): void }

/**
 * A malla router for one test, on loopback. Its data directory is removed only after the daemon is gone
 * (`after` hooks run first-in, first-out, and peers leaving make the daemon write until the end).
 */
export async function testRouter(t: TestContext, name = 'r1'): Promise<RunningDaemon> {
  const dir = await mkdtemp(join(tmpdir(), 'malla-router-'))
  let stop: (() => Promise<void>) | undefined
  t.after(async () => {
    await stop?.()
    await rm(dir, { recursive: true, force: true })
  })
  const d = await startDaemon(t, ['--data', dir, '--name', name])
  stop = () => d.stop('SIGKILL')
  return d
}

/** Resolves once `ok()` holds, re-checked on every mesh event of `rooms` (and every 250 ms); fails with `what` after `ms`. */
export function untilRooms(rooms: readonly Room[], ok: () => boolean, what: () => string, ms = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const offs: Array<() => void> = []
    const done = (e?: Error) => {
      clearTimeout(timer)
      clearInterval(poll)
      for (const off of offs) off()
      if (e) reject(e)
      else resolve()
    }
    const check = () => ok() && done()
    const timer = setTimeout(() => done(new Error(`timed out after ${ms} ms: ${what()}`)), ms)
    // Events drive the check; the interval only covers a change that fires no event (a stats counter).
    const poll = setInterval(check, 250)
    for (const r of rooms) offs.push(r.mesh.on('peer', check), r.mesh.on('peer-closed', check))
    check()
  })
}
