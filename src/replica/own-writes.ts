import type { Entry, Json, TypeName } from '../core/types.js'
import type { Replica } from './replica.js'

/** Own rewrites of one key climb by one TTL each, up to here. */
export const MAX_OWN_TTL = 30

/**
 * Writes entries of this replica's own, so that a rewrite replaces the previous copy on every router: a rewrite
 * of a key this replica wrote before gets one more TTL than that copy (up to MAX_OWN_TTL). A plain LibreMesh
 * router keeps the copy with the higher TTL and ignores an equal one, so a rewrite (a renewal, a "taken" mark, a
 * withdrawal, a presence update) at the same TTL would never replace the old copy there. malla routers order
 * by clock anyway.
 */
export async function writeOwn(replica: Replica, type: TypeName, values: ReadonlyArray<readonly [string, Json]>, baseTtl: number): Promise<void> {
  if (values.length === 0) return
  const table = (await replica.read({ flavour: 'ttl', type })).table as ReadonlyMap<string, Entry>
  let ttl = baseTtl
  for (const [key] of values) {
    const before = table.get(key)
    if (before?.author === replica.author) ttl = Math.max(ttl, Math.min(MAX_OWN_TTL, before.bleachTTL + 1))
  }
  await replica.insert(type, values, ttl)
}
