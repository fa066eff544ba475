import type { BenchResult, BenchRow, MachineInfo } from './result.js'

/** Plain-text tables and number formatting for benchmark reports. */

export type Align = 'left' | 'right'

/** Renders rows of cells as an aligned table with a header rule; `sections` puts a blank line where the first cell changes. */
export function renderTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>, align: readonly Align[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (align[i] === 'right' ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** A number with about three significant digits, thousands grouped: 0.0123, 1.23, 12.3, 123, 12,345. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  const a = Math.abs(v)
  if (a === 0) return '0'
  if (a >= 1000) return Math.round(v).toLocaleString('en-US')
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  if (a >= 1) return v.toFixed(2)
  if (a >= 0.01) return v.toFixed(3)
  return v.toPrecision(2)
}

export function formatRatio(r: number | undefined): string {
  if (r === undefined) return ''
  if (!Number.isFinite(r)) return String(r)
  return `${r >= 10 ? r.toFixed(1) : r >= 1 ? r.toFixed(2) : r.toFixed(3)}×`
}

function targetCell(row: BenchRow): string {
  if (!row.target) return ''
  const { limit, better, met } = row.target
  return `${better === 'lower' ? '<' : '>'} ${formatNumber(limit)}: ${met ? 'yes' : 'NO'}`
}

/** The report table of one result: one line per row, the baseline and ratio beside each figure. */
export function renderResult(result: BenchResult): string {
  const header = ['section', 'measurement', 'n', 'median', 'unit', 'p10..p90', 'reps', 'baseline', 'baseline value', 'ratio', 'target']
  const align: Align[] = ['left', 'left', 'right', 'right', 'left', 'right', 'right', 'left', 'right', 'right', 'left']
  const cells: string[][] = []
  let section: string | undefined
  for (const r of result.rows) {
    if (section !== undefined && r.section !== section) cells.push(header.map(() => ''))
    cells.push([
      r.section === section ? '' : r.section,
      r.name,
      r.n === undefined ? '' : r.n.toLocaleString('en-US'),
      formatNumber(r.value),
      r.unit,
      r.spread ? `${formatNumber(r.spread.p10)}..${formatNumber(r.spread.p90)}` : '',
      r.reps === undefined ? '' : String(r.reps),
      r.baseline?.name ?? '',
      r.baseline ? formatNumber(r.baseline.value) : '',
      formatRatio(r.ratio),
      targetCell(r),
    ])
    section = r.section
  }
  return renderTable(header, cells, align)
}

export function renderMachine(m: MachineInfo): string {
  return `node ${m.node} (V8 ${m.v8}), ${m.cpuCount} × ${m.cpuModel}, ${m.totalMemoryMB.toLocaleString('en-US')} MB RAM, ${m.platform}/${m.arch} ${m.kernel}, ${m.date}`
}
