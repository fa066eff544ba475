import { signal } from '@preact/signals'
import type { Entry, Room, TableRef } from 'malla/browser'

export interface TableInfo {
  readonly flavour: 'ttl' | 'multiwriter'
  readonly type: string
  readonly size: number
}

export interface TableRow {
  readonly key: string
  readonly author: string | undefined
  readonly ttl: number | undefined
  readonly data: string
}

/** Rows shown of one table, and characters of each row's data: a huge table stays a bounded page. */
const MAX_ROWS = 500
const MAX_DATA_CHARS = 400
const REFETCH_MS = 500

/**
 * The tables view's data. From a malla daemon: every table the router holds, live from its change feed
 * (`/malla/v1/events`). From a plain LibreMesh router, which has no such API: the tables this page holds.
 */
export class TablesModel {
  readonly tables = signal<readonly TableInfo[]>([])
  readonly selected = signal<string | undefined>(undefined)
  readonly rows = signal<readonly TableRow[]>([])
  readonly source: 'router' | 'page'
  private feed: EventSource | undefined
  private offReplica: (() => void) | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private stopped = false

  constructor(private readonly room: Room) {
    this.source = room.router.kind === 'malla' ? 'router' : 'page'
  }

  start(): void {
    if (this.source === 'router') {
      this.feed = new EventSource(new URL('malla/v1/events', this.room.router.url + '/').href)
      this.feed.addEventListener('change', () => this.schedule())
      this.feed.addEventListener('reset', () => this.schedule())
    } else {
      this.offReplica = this.room.replica.on('change', () => this.schedule())
    }
    void this.refresh()
  }

  stop(): void {
    this.stopped = true
    this.feed?.close()
    this.offReplica?.()
    clearTimeout(this.timer)
  }

  select(type: string | undefined): void {
    this.selected.value = type
    void this.refresh()
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined
      void this.refresh()
    }, REFETCH_MS)
  }

  private async refresh(): Promise<void> {
    if (this.stopped) return
    const list = this.source === 'router' ? await this.routerList() : await this.pageList()
    this.tables.value = list.sort((a, b) => a.type.localeCompare(b.type))
    const chosen = list.find((t) => t.type === this.selected.value)
    if (!chosen) {
      this.rows.value = []
      return
    }
    const table = this.source === 'router' ? await this.routerTable(chosen) : await this.pageTable(chosen)
    this.rows.value = toRows(table)
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

function toRows(table: ReadonlyMap<string, unknown>): TableRow[] {
  const rows: TableRow[] = []
  for (const [key, value] of table) {
    if (rows.length >= MAX_ROWS) break
    const e = value as Partial<Entry> | null
    const data = JSON.stringify(e && typeof e === 'object' && 'data' in e ? e.data : value) ?? 'null'
    rows.push({
      key,
      author: typeof e?.author === 'string' ? e.author : undefined,
      ttl: typeof e?.bleachTTL === 'number' ? e.bleachTTL : undefined,
      data: data.length > MAX_DATA_CHARS ? `${data.slice(0, MAX_DATA_CHARS)}…` : data,
    })
  }
  return rows.sort((a, b) => a.key.localeCompare(b.key))
}
