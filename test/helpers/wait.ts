import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Checks `ok` every `everyMs` until it holds, and fails with `what` after `timeoutMs`. For state another
 * process owns (a daemon's files, its answers), where no event reaches the test.
 */
export async function waitFor(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await ok()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await sleep(everyMs)
  }
}
