import { totalmem } from 'node:os'
import { setFlagsFromString } from 'node:v8'

/** `--memory`: how the daemon trades speed for memory. `auto` is `lean` on a machine with less than 1 GiB. */
export const MEMORY_CHOICES = ['auto', 'lean', 'fast'] as const
export type MemoryChoice = (typeof MEMORY_CHOICES)[number]
export type MemoryMode = Exclude<MemoryChoice, 'auto'>

/** Below this much RAM, `auto` is `lean`: routers (64 to 512 MB), not the computers beside them. */
export const LEAN_BELOW_BYTES = 1024 ** 3

/**
 * The V8 flags `malla peer` sets on itself, before it holds any table.
 *
 * Both modes: V8 sizes its next full collection at a multiple of what survived the last one (up to 4×), so a
 * daemon that holds 100,000 entries and keeps writing would grow far before garbage is swept: the request
 * bodies, change-log texts and folded table copies of every insert pile up in between. With
 * `--optimize-for-size` the multiple is kept near 1.3× and idle pages go back sooner.
 *
 * `lean` adds, for a router:
 * - `--no-turbofan`: no optimizing compiler. It compiles on V8's worker threads, and glibc gives each thread
 *   a heap of its own that keeps what the compiler freed: ~15 MB of RSS after a fill of 100,000 entries
 *   (measured in docs/openwrt.md §4). Code runs in the interpreter and the baseline compiler, and a bulk fill
 *   takes about twice as long; a daemon mostly waits on the network, parses JSON and deflates, which V8 does
 *   in C++ anyway.
 * - `--semi-space-growth-factor=1`: the young generation stays at its first size (1 MB a half) instead of
 *   growing to 16 MB under a burst of writes and keeping those pages.
 *
 * Set from inside because a router's init script, `npx`, a service unit or a person typing `node malla.mjs
 * peer` should all get them, and `NODE_OPTIONS` refuses these flags. V8 reads them at each collection and
 * each decision to optimize, so setting them after start works (unlike the semi-space's maximum, fixed when
 * the heap is made).
 */
export const DAEMON_V8_FLAGS: Record<MemoryMode, readonly string[]> = {
  fast: ['--optimize-for-size'],
  lean: ['--optimize-for-size', '--no-turbofan', '--semi-space-growth-factor=1'],
}

export function memoryMode(choice: MemoryChoice, totalBytes: number = totalmem()): MemoryMode {
  if (choice !== 'auto') return choice
  return totalBytes < LEAN_BELOW_BYTES ? 'lean' : 'fast'
}

/** Applies the mode's flags to this process; `MALLA_HEAP_TUNING=0` leaves V8 as it is, to compare. */
export function tuneHeapForDaemon(mode: MemoryMode, env: NodeJS.ProcessEnv = process.env): readonly string[] {
  if (env.MALLA_HEAP_TUNING === '0') return []
  const flags = DAEMON_V8_FLAGS[mode]
  for (const flag of flags) setFlagsFromString(flag)
  return flags
}
