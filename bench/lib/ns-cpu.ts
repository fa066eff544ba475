import { readdir, readFile, readlink, stat } from 'node:fs/promises'

/** Linux reports process times in clock ticks of 1/100 s (USER_HZ, the same on every architecture Node runs on). */
const TICKS_PER_SECOND = 100

/**
 * CPU seconds (user + system) used so far by every live process in each of the network namespaces `names`
 * (as `ip netns` names them): what a side of a benchmark costs, whichever processes it runs (a browser's
 * renderer, network service and GPU processes, a daemon). Subtract two readings to get what happened between.
 */
export async function cpuByNamespace(names: readonly string[]): Promise<Map<string, number>> {
  const byInode = new Map<string, string>()
  for (const name of names) byInode.set(`net:[${(await stat(`/run/netns/${name}`)).ino}]`, name)
  const out = new Map<string, number>(names.map((n) => [n, 0]))
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const ns = byInode.get(await readlink(`/proc/${pid}/ns/net`))
      if (ns === undefined) continue
      // Fields after the command (which may hold spaces and parentheses): utime and stime are the 12th and 13th.
      const text = await readFile(`/proc/${pid}/stat`, 'utf8')
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
      out.set(ns, (out.get(ns) ?? 0) + (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND)
    } catch {
      // The process ended while it was being read: what it used is gone with it.
    }
  }
  return out
}

/** CPU seconds per namespace between two readings, and their sum. */
export function cpuSpent(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): { readonly total: number; readonly byNamespace: ReadonlyMap<string, number> } {
  const byNamespace = new Map([...after].map(([ns, s]) => [ns, s - (before.get(ns) ?? 0)]))
  return { total: [...byNamespace.values()].reduce((a, b) => a + b, 0), byNamespace }
}
