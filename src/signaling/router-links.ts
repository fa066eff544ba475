import * as v from 'valibot'
import type { Json, TypeName } from '../core/types.js'

/**
 * `malla-links`, key: a router's `--name`, data `{"v":1,"n":[neighbour names]}`: which malla routers each
 * router syncs with right now. Routers publish it; pages read it to tell how many hops away another peer's
 * router is, so they answer the nearest offers first. A LibreMesh router publishes nothing here, so its
 * peers count as "distance unknown" (after every known one).
 */
export const LINKS_TYPE = 'malla-links' as TypeName

const LinksData = v.object({ v: v.literal(1), n: v.pipe(v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(64))), v.maxLength(256)) })

export function linksData(neighbours: readonly string[]): Json {
  return { v: 1, n: [...new Set(neighbours)].sort() }
}

/** The links of a `malla-links` table; entries that do not parse (or were removed) are skipped. */
export function parseLinks(table: ReadonlyMap<string, { readonly data?: unknown }>): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>()
  for (const [router, entry] of table) {
    const r = v.safeParse(LinksData, entry.data)
    if (r.success) out.set(router, r.output.n)
  }
  return out
}

/**
 * Hops from `from` to every router reachable through `links`, breadth first. A link counts in both
 * directions as soon as either end lists it: routers publish at different moments, and a mesh link is
 * symmetric.
 */
export function hopDistances(links: ReadonlyMap<string, readonly string[]>, from: string): Map<string, number> {
  const adjacent = new Map<string, Set<string>>()
  const add = (a: string, b: string) => {
    if (!adjacent.has(a)) adjacent.set(a, new Set())
    adjacent.get(a)?.add(b)
  }
  for (const [router, neighbours] of links) {
    for (const n of neighbours) {
      add(router, n)
      add(n, router)
    }
  }
  const distance = new Map<string, number>([[from, 0]])
  const queue = [from]
  while (queue.length > 0) {
    const at = queue.shift() as string
    for (const next of adjacent.get(at) ?? []) {
      if (distance.has(next)) continue
      distance.set(next, (distance.get(at) as number) + 1)
      queue.push(next)
    }
  }
  return distance
}
