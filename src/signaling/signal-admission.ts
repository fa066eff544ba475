import type { TableRef } from '../storage/table-store.js'
import { isKeyBound, keyPeer } from './signal-records.js'
import { checkRecord, type RecordCheck, type RecordChecker } from './signed-records.js'

/** Verified records remembered, at most: each is checked once however often the mesh sends it again. */
const REMEMBERED = 4096

/**
 * What a replica admits of rooms' signaling tables (`Replica`'s `admit`, §18.2): an entry whose key names a
 * key-bound peer id must be written by that peer and signed by its key. Anything else naming such a peer (a
 * null, a taken mark, an offer under its id) is dropped on arrival, so a page or a malla router neither keeps
 * nor relays it, and cannot be made to forget the real one by a copy with a higher TTL. Entries of peers
 * without a key-bound id, and every other table, pass untouched: LibreMesh types stay as LibreMesh has them.
 * A plain Lua router does no such check: it keeps whichever copy has the higher TTL. `onRefused` hears of each
 * refused copy once (a mesh counts them with the entries it skipped). `check` is shared with the tables' reads in a page
 * (`rememberingChecker`), so that each record is verified once.
 */
export function signalAdmission(onRefused?: (table: 'offers' | 'answers') => void, check: RecordChecker = rememberingChecker()): (ref: TableRef, key: string, entry: object) => boolean {
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
    const peer = keyPeer(table, key)
    if (!isKeyBound(peer)) return true
    const { data, author } = entry as { data?: unknown; author?: unknown }
    if (author !== peer || data === null || typeof data !== 'object' || !('pgp' in data)) return refuse(table, ref.type, key, entry)
    try {
      check(ref.type, key, peer, data)
    } catch {
      return refuse(table, ref.type, key, entry)
    }
    return true
  }
}

/**
 * `checkRecord`, remembering the records it found valid (the last 4,096, by table, key and signature, with the
 * value checked): a page checks each record when it arrives and again when it reads the tables, and a router
 * gets the same table again at every sync. The key is part of what is remembered, since a signature covers its
 * key: the same signed value under another key is checked anew, and fails.
 */
export function rememberingChecker(): RecordChecker {
  const valid = new Map<string, { readonly json: string; readonly result: RecordCheck }>()
  return (type, key, peer, data) => {
    const sig = (data as { pgp?: { sig?: unknown } } | null)?.pgp?.sig
    if (typeof sig !== 'string') return checkRecord(type, key, peer, data)
    const id = `${type}\u0000${key}\u0000${peer}\u0000${sig}`
    const json = JSON.stringify(data)
    const known = valid.get(id)
    if (known?.json === json) return known.result
    const result = checkRecord(type, key, peer, data)
    if (valid.size >= REMEMBERED) valid.delete(valid.keys().next().value as string)
    valid.set(id, { json, result })
    return result
  }
}
