import { MallaError } from '../../core/errors.js'
import { isTypeName } from '../../core/schema.js'
import type { TypeName } from '../../core/types.js'
import { refKey, type TableRef } from '../../storage/table-store.js'

/**
 * The Lua shared-state types a LibreMesh network syncs over HTTP (its packages' cron jobs run
 * `shared-state sync <type>` for these; `network_nodes` is multi-writer).
 */
export const LIBREMESH_HTTP_TABLES = 'babeld-hosts,dnsmasq-hosts,dnsmasq-leases,dnsmasq-servers,nodes_and_links,pirania-vouchers,multiwriter/network_nodes'

/** Parses `--types`: type names, comma-separated, `multiwriter/<name>` for a multi-writer table. */
export function parseTableList(text: string): TableRef[] {
  const out = new Map<string, TableRef>()
  for (const item of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const multi = item.startsWith('multiwriter/')
    const name = multi ? item.slice('multiwriter/'.length) : item
    if (!isTypeName(name)) throw new MallaError('BAD_INPUT', `--types: ${JSON.stringify(item)} is not a type name ([A-Za-z0-9_-], or multiwriter/<name>)`)
    const ref: TableRef = { flavour: multi ? 'multiwriter' : 'ttl', type: name as TypeName }
    out.set(refKey(ref), ref)
  }
  return [...out.values()]
}

/** The most types remembered because someone asked for them; the oldest asked is forgotten first. */
export const MAX_ASKED_TABLES = 32

/**
 * The tables a daemon syncs with every neighbour even while it holds none of them: the configured ones (a
 * LibreMesh router starts no sync for a type no cron job of its own names, so a type that reaches this node only
 * through such a router never arrives otherwise), and the ones someone asked this daemon for (read through its
 * API or followed on its feed). Iterating gives the current list, so the sync engine always sees it as it is now.
 */
export class WantedTables implements Iterable<TableRef> {
  private readonly asked = new Map<string, TableRef>()

  constructor(
    private readonly configured: readonly TableRef[],
    private readonly maxAsked = MAX_ASKED_TABLES,
  ) {}

  ask(ref: TableRef): void {
    const key = refKey(ref)
    if (this.configured.some((r) => refKey(r) === key)) return
    this.asked.delete(key)
    this.asked.set(key, ref)
    if (this.asked.size > this.maxAsked) this.asked.delete(this.asked.keys().next().value as string)
  }

  *[Symbol.iterator](): Iterator<TableRef> {
    yield* this.configured
    yield* this.asked.values()
  }
}
