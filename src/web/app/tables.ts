import { signal } from '@preact/signals'
import type { Entry, Room, TableRef } from 'malla/browser'

export interface TableInfo {
  readonly flavour: 'ttl' | 'multiwriter'
  readonly type: string
  readonly size: number
}

export interface TableRow {
  readonly key: string
  /** Changed since the table was opened: these come first, the latest on top. */
  readonly changed: boolean
  readonly author: string | undefined
  readonly ttl: number | undefined
  readonly data: string
}

/** Rows shown of one table, and characters of each row's data: a huge table stays a bounded page. */
const MAX_ROWS = 500
const MAX_DATA_CHARS = 400
/** The list's sizes are fetched again at most this often while tables change. */
const LIST_EVERY_MS = 500
/** The selected table's rows are redrawn at most this often. */
const ROWS_EVERY_MS = 100
/** Feed events kept while the selected table is being fetched; past this, it is fetched again once it arrives. */
const MAX_HELD_EVENTS = 1000

/** A feed `change` event as the router sends it (docs/protocol.md §10). */
interface FeedChange {
  readonly flavour: string
  readonly type: string
  readonly entries: Readonly<Record<string, unknown>>
}

/**
 * The tables view's data. From a malla daemon: every table the router holds, live from its change feed
 * (`/malla/v1/events`). From a plain LibreMesh router, which has no such API: the tables this page holds.
 * The selected table is read once, then kept up to date from the changes themselves: a busy table elsewhere
 * costs one small list request per half second, and no table is read again for a change to another.
 */
export class TablesModel {
  readonly tables = signal<readonly TableInfo[]>([])
  readonly selected = signal<string | undefined>(undefined)
  readonly rows = signal<readonly TableRow[]>([])
  /** Entries in the selected table, of which `rows` shows at most 500. */
  readonly size = signal(0)
  readonly source: 'router' | 'page'
  private feed: EventSource | undefined
  private offReplica: (() => void) | undefined
  private listTimer: ReturnType<typeof setTimeout> | undefined
  private rowsTimer: ReturnType<typeof setTimeout> | undefined
  /** The selected table as last read and changed since; undefined while it is being read. */
  private current: Map<string, unknown> | undefined
  /** Changes to the selected table that came while it was being read, applied after; undefined once too many came. */
  private held: FeedChange[] | undefined = []
  /** Keys of the selected table changed since it was opened, the latest last; at most MAX_ROWS. */
  private recent = new Set<string>()
  /** Counts reads, so that an older one that ends late is dropped. */
  private reads = 0
  private stopped = false

  constructor(private readonly room: Room) {
    this.source = room.router.kind === 'malla' ? 'router' : 'page'
  }

  start(): void {
    if (this.source === 'router') {
      this.feed = new EventSource(new URL('malla/v1/events', this.room.router.url + '/').href)
      this.feed.addEventListener('change', (e) => this.onFeed((e as MessageEvent<string>).data))
      // The feed lost changes (a restart, a long absence): everything is read again.
      this.feed.addEventListener('reset', () => (this.scheduleList(), void this.readSelected()))
    } else {
      this.offReplica = this.room.replica.on('change', (e) => {
        this.scheduleList()
        if (e.type !== this.selected.value) return
        // The whole table after the change: newer than any read still on its way, which is dropped.
        this.reads++
        this.current = new Map(e.table)
        this.touch(e.keys)
        this.scheduleRows()
      })
    }
    void this.refreshList()
  }

  stop(): void {
    this.stopped = true
    this.feed?.close()
    this.offReplica?.()
    clearTimeout(this.listTimer)
    clearTimeout(this.rowsTimer)
  }

  select(type: string | undefined): void {
    this.selected.value = type
    this.rows.value = []
    this.size.value = 0
    this.recent = new Set()
    void this.readSelected()
  }

  private onFeed(text: string): void {
    this.scheduleList()
    let change: FeedChange
    try {
      change = JSON.parse(text) as FeedChange
    } catch {
      return
    }
    if (change?.type !== this.selected.value || typeof change.entries !== 'object' || change.entries === null) return
    if (this.current === undefined) {
      if (this.held && this.held.length < MAX_HELD_EVENTS) this.held.push(change)
      else this.held = undefined
      return
    }
    apply(this.current, change)
    this.touch(Object.keys(change.entries))
    this.scheduleRows()
  }

  private touch(keys: readonly string[]): void {
    for (const key of keys) {
      this.recent.delete(key)
      this.recent.add(key)
    }
    for (const key of this.recent) {
      if (this.recent.size <= MAX_ROWS) break
      this.recent.delete(key)
    }
  }

  /** Reads the selected table whole, then applies what changed meanwhile. */
  private async readSelected(): Promise<void> {
    const read = ++this.reads
    this.current = undefined
    this.held = []
    const type = this.selected.value
    const info = this.tables.value.find((t) => t.type === type) ?? (await this.refreshList()).find((t) => t.type === type)
    if (read !== this.reads || this.stopped) return
    if (!info) {
      this.current = new Map()
      this.scheduleRows()
      return
    }
    const table = new Map(this.source === 'router' ? await this.routerTable(info) : await this.pageTable(info))
    if (read !== this.reads || this.stopped) return
    if (this.held === undefined) return void this.readSelected()
    for (const change of this.held) (apply(table, change), this.touch(Object.keys(change.entries)))
    this.held = []
    this.current = table
    this.scheduleRows()
  }

  private scheduleList(): void {
    this.listTimer ??= setTimeout(() => {
      this.listTimer = undefined
      void this.refreshList()
    }, LIST_EVERY_MS)
  }

  private scheduleRows(): void {
    this.rowsTimer ??= setTimeout(() => {
      this.rowsTimer = undefined
      if (!this.current || this.stopped) return
      this.size.value = this.current.size
      this.rows.value = toRows(this.current, this.recent)
    }, ROWS_EVERY_MS)
  }

  private async refreshList(): Promise<TableInfo[]> {
    if (this.stopped) return []
    const list = (this.source === 'router' ? await this.routerList() : await this.pageList()).sort((a, b) => a.type.localeCompare(b.type))
    if (!this.stopped) this.tables.value = list
    return list
  }

  private async routerList(): Promise<TableInfo[]> {
    try {
      const res = await fetch(new URL('malla/v1/tables', this.room.router.url + '/'), { signal: AbortSignal.timeout(5000) })
      const body = (await res.json()) as unknown
      if (!Array.isArray(body)) return []
      return body.filter((t): t is TableInfo => typeof t?.type === 'string' && (t.flavour === 'ttl' || t.flavour === 'multiwriter') && typeof t.size === 'number').slice(0, 1000)
    } catch {
      return this.tables.value.slice()
    }
  }

  private async routerTable(t: TableInfo): Promise<ReadonlyMap<string, unknown>> {
    try {
      const res = await fetch(new URL(`malla/v1/${t.flavour === 'ttl' ? 'tables' : 'multiwriter'}/${encodeURIComponent(t.type)}`, this.room.router.url + '/'), { signal: AbortSignal.timeout(5000) })
      const body = (await res.json()) as unknown
      return typeof body === 'object' && body !== null ? new Map(Object.entries(body)) : new Map()
    } catch {
      return new Map()
    }
  }

  private async pageList(): Promise<TableInfo[]> {
    const refs = await this.room.replica.list()
    return Promise.all(refs.map(async (r) => ({ flavour: r.flavour, type: r.type, size: (await this.room.replica.read(r)).table.size })))
  }

  private async pageTable(t: TableInfo): Promise<ReadonlyMap<string, unknown>> {
    return (await this.room.replica.read({ flavour: t.flavour, type: t.type } as TableRef)).table
  }
}

/** A feed change applied to a table read earlier: a `null` entry is a key gone. */
function apply(table: Map<string, unknown>, change: FeedChange): void {
  for (const [key, entry] of Object.entries(change.entries)) {
    if (entry === null) table.delete(key)
    else table.set(key, entry)
  }
}

/**
 * At most MAX_ROWS rows: the keys changed since the table was opened, the latest first (what a maintainer
 * watching it wants to see, wherever they sort), then the others by key.
 */
function toRows(table: ReadonlyMap<string, unknown>, recent: ReadonlySet<string>): TableRow[] {
  const changed = [...recent].reverse().filter((k) => table.has(k))
  const rest = changed.length >= MAX_ROWS ? [] : [...table.keys()].filter((k) => !recent.has(k)).sort().slice(0, MAX_ROWS - changed.length)
  return [...changed.slice(0, MAX_ROWS).map((k) => toRow(k, table.get(k), true)), ...rest.map((k) => toRow(k, table.get(k), false))]
}

function toRow(key: string, value: unknown, changed: boolean): TableRow {
  const e = value as Partial<Entry> | null
  const data = JSON.stringify(e && typeof e === 'object' && 'data' in e ? e.data : value) ?? 'null'
  return {
    key,
    changed,
    author: typeof e?.author === 'string' ? e.author : undefined,
    ttl: typeof e?.bleachTTL === 'number' ? e.bleachTTL : undefined,
    data: data.length > MAX_DATA_CHARS ? `${data.slice(0, MAX_DATA_CHARS)}…` : data,
  }
}
