import type { TableRef } from '../storage/table-store.js'
import { isKeyBound } from './signal-records.js'
import { checkRecord } from './signed-records.js'

/** Verified records remembered, at most: each is checked once however often the mesh sends it again. */
const REMEMBERED = 4096

/**
 * What a replica admits of rooms' signaling tables (`Replica`'s `admit`, §18.2): an entry whose key names a
 * key-bound peer id must be written by that peer and signed by its key. Anything else naming such a peer (a
 * null, a taken mark, an offer under its id) is dropped on arrival, so a page or a malla router neither keeps
 * nor relays it, and cannot be made to forget the real one by a copy with a higher TTL. Entries of peers
 * without a key-bound id, and every other table, pass untouched: LibreMesh types stay as LibreMesh has them.
 * A plain Lua router does no such check: it keeps whichever copy has the higher TTL. `onRefused` hears of each
 * refused copy once (a mesh counts them with the entries it skipped).
 */
export function signalAdmission(onRefused?: (table: 'offers' | 'answers') => void): (ref: TableRef, key: string, entry: object) => boolean {
  // A signature covers one value: remembered with the JSON it was checked on, so a changed value is checked anew.
  const verified = new Map<string, string>()
  // Refused copies already reported: a router re-sends its table at every poll, and each forgery counts once.
  const reported = new Set<string>()
  const refuse = (table: 'offers' | 'answers', type: string, key: string, entry: object): false => {
    const id = `${type}\u0000${key}\u0000${JSON.stringify(entry)}`
    if (!reported.has(id)) {
      if (reported.size >= REMEMBERED) reported.clear()
      reported.add(id)
      onRefused?.(table)
    }
    return false
  }
  return (ref, key, entry) => {
    if (ref.flavour !== 'ttl') return true
    const table = ref.type.endsWith('-_offers') ? 'offers' : ref.type.endsWith('-_answers') ? 'answers' : undefined
    if (!table || !ref.type.startsWith('room-')) return true
    const peer = table === 'offers' ? key.slice(0, key.lastIndexOf('.')) : key.slice(key.lastIndexOf('>') + 1)
    if (!isKeyBound(peer)) return true
    const { data, author } = entry as { data?: unknown; author?: unknown }
    if (author !== peer || data === null || typeof data !== 'object') return refuse(table, ref.type, key, entry)
    const sig = (data as { pgp?: { sig?: unknown } }).pgp?.sig
    if (typeof sig !== 'string') return refuse(table, ref.type, key, entry)
    const json = JSON.stringify(data)
    if (verified.get(sig) === json) return true
    try {
      checkRecord(ref.type, key, peer, data)
    } catch {
      return refuse(table, ref.type, key, entry)
    }
    if (verified.size >= REMEMBERED) verified.delete(verified.keys().next().value as string)
    verified.set(sig, json)
    return true
  }
}
