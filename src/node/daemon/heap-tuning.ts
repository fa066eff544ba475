import { setFlagsFromString } from 'node:v8'

/**
 * The V8 flag `malla peer` sets on itself, before it holds any table.
 *
 * V8 sizes its next full collection at a multiple of what survived the last one (up to 4×), so a daemon that
 * holds 100,000 entries (~50 MB live) and keeps writing grows to ~250 MB before garbage is swept: the
 * request bodies, change-log texts and folded table copies of every insert pile up in between. With
 * `--optimize-for-size` the multiple is kept near 1.3× and idle pages go back sooner, which on a router
 * is worth the extra collections (measured in docs/openwrt.md §4).
 *
 * Set from inside because a router's init script, `npx`, a service unit or a person typing `node malla.mjs
 * peer` should all get it, and `NODE_OPTIONS` refuses this flag. It is read by the heap at every collection,
 * so setting it after start works (unlike the semi-space size, fixed when the heap is made).
 */
export const DAEMON_V8_FLAGS = ['--optimize-for-size'] as const

/** Applies DAEMON_V8_FLAGS to this process; `MALLA_HEAP_TUNING=0` leaves V8 as it is, to compare. */
export function tuneHeapForDaemon(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  if (env.MALLA_HEAP_TUNING === '0') return []
  for (const flag of DAEMON_V8_FLAGS) setFlagsFromString(flag)
  return DAEMON_V8_FLAGS
}
