/**
 * `npm test`'s first step: the Debian programs the tests drive (Chromium, GnuPG, ip, ping, ps) are there, or
 * it installs them (as root, with apt-get), so that the README's test line works on a fresh Debian machine by
 * itself. Without root or apt-get it says what to install and fails: the tests would fail later, less clearly.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

/** What the tests run, and the Debian package that gives it. */
const NEEDED: ReadonlyArray<readonly [program: string, pkg: string]> = [
  ['/usr/bin/chromium', 'chromium'],
  ['gpg', 'gnupg'],
  ['ip', 'iproute2'],
  ['ping', 'iputils-ping'],
  ['ps', 'procps'],
]

const found = (program: string): boolean => (program.startsWith('/') ? existsSync(program) : spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0)

const missing = NEEDED.filter(([program]) => !found(program)).map(([, pkg]) => pkg)
if (missing.length > 0) {
  const install = ['install', '-y', '-qq', '--no-install-recommends', ...missing, 'ca-certificates']
  if (process.getuid?.() !== 0 || !found('apt-get')) {
    process.stderr.write(`npm test: the tests need ${missing.join(', ')}: install them first (as root: apt-get ${install.join(' ')})\n`)
    process.exit(1)
  }
  process.stdout.write(`npm test: installing ${missing.join(', ')} (apt-get)\n`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['update', '-qq'], install]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env })
    if (r.status !== 0) {
      process.stderr.write(`npm test: apt-get ${args.join(' ')} failed (status ${r.status})\n`)
      process.exit(1)
    }
  }
}
