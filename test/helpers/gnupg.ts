import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runBounded, type CliResult } from './processes.js'

/**
 * Debian's GnuPG with a home of its own for one test: nothing is read from or written to a user's keyring,
 * no prompt (`--batch`, an empty passphrase through loopback pinentry), each call bounded in time. When the
 * test ends, the agent it started is stopped, then its home removed.
 */
export async function gnupg(t: { after(fn: () => unknown): void }): Promise<{ home: string; gpg: (args: readonly string[], input?: string) => Promise<CliResult> }> {
  const home = await mkdtemp(join(tmpdir(), 'malla-gnupg-'))
  t.after(async () => {
    await runBounded('gpgconf', ['--homedir', home, '--kill', 'all'], '', 10_000, 'gpgconf --kill all').catch(() => {})
    await rm(home, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 })
  })
  const gpg = (args: readonly string[], input = '') => runBounded('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], input, 30_000, `gpg ${args.join(' ')}`)
  return { home, gpg }
}
