import { sameEntry } from '../core/order.js'

/**
 * The answer to a push (docs/protocol.md §9.2): for each key sent, the receiver's copy after the merge where
 * that is not the copy sent (its own copy won). Usually empty.
 */
export function pushCorrections(sent: ReadonlyMap<string, object>, merged: ReadonlyMap<string, object>): Map<string, object> {
  const out = new Map<string, object>()
  for (const [key, entry] of sent) {
    const ours = merged.get(key)
    // Only where our copy differs: an equal copy kept here is not a correction.
    if (ours !== undefined && !sameEntry(ours as Record<string, unknown>, entry as Record<string, unknown>)) out.set(key, ours)
  }
  return out
}
