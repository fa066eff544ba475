/**
 * Runs one benchmark: `npm run bench -- <name> [args...]` imports bench/<name>.ts, calls its `run`,
 * prints the result as a table (with the baseline measured in the same run and the ratio to it) and
 * writes the same figures, with machine info, to bench/results/<name>.json.
 */
import { readdirSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { renderMachine, renderResult } from './lib/format.js'
import { machineInfo, type BenchModule, type BenchResult } from './lib/result.js'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const RESULTS_DIR = join(BENCH_DIR, 'results')

function available(): string[] {
  return readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && f !== 'run.ts')
    .map((f) => f.slice(0, -3))
    .sort()
}

function usage(): string {
  const names = available()
  return [
    'usage: npm run bench -- <name> [args...]',
    '',
    'Runs bench/<name>.ts, prints its table and writes bench/results/<name>.json.',
    `available benchmarks: ${names.length > 0 ? names.join(', ') : '(none)'}`,
  ].join('\n')
}

function isBenchModule(m: unknown): m is BenchModule {
  return typeof m === 'object' && m !== null && typeof (m as { run?: unknown }).run === 'function'
}

function validResult(r: unknown): r is BenchResult {
  return typeof r === 'object' && r !== null && Array.isArray((r as { rows?: unknown }).rows) && typeof (r as { title?: unknown }).title === 'string'
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n')
    return 0
  }
  if (name === undefined || name.startsWith('-')) {
    process.stderr.write(`bench: no benchmark named\n${usage()}\n`)
    return 2
  }
  if (!available().includes(name)) {
    process.stderr.write(`bench: unknown benchmark ${JSON.stringify(name)}\n${usage()}\n`)
    return 2
  }
  const module: unknown = await import(pathToFileURL(join(BENCH_DIR, `${name}.ts`)).href)
  if (!isBenchModule(module)) {
    process.stderr.write(`bench: bench/${name}.ts does not export run(): Promise<BenchResult>\n`)
    return 2
  }
  const machine = machineInfo()
  const started = process.hrtime.bigint()
  const progress = (message: string) => process.stderr.write(`[${name} ${((Number(process.hrtime.bigint() - started) / 1e9).toFixed(1) + 's').padStart(6)}] ${message}\n`)
  progress(`machine: ${renderMachine(machine)}`)
  const result = await module.run({ args, progress })
  if (!validResult(result)) throw new Error(`bench/${name}.ts: run() did not return a BenchResult`)
  const durationS = Number(process.hrtime.bigint() - started) / 1e9

  const out = process.stdout
  out.write(`\n${name}: ${result.title}\n`)
  out.write(`${renderMachine(machine)}; took ${durationS.toFixed(1)} s\n\n`)
  out.write(renderResult(result) + '\n')
  if (result.notes && result.notes.length > 0) out.write('\n' + result.notes.map((n) => `- ${n}`).join('\n') + '\n')
  const missed = result.rows.filter((r) => r.target && !r.target.met)
  const checked = result.rows.filter((r) => r.target)
  if (checked.length > 0) out.write(`\ntargets: ${checked.length - missed.length} of ${checked.length} met${missed.length ? ` (missed: ${missed.map((r) => `${r.section} / ${r.name}${r.n === undefined ? '' : ` n=${r.n}`}`).join('; ')})` : ''}\n`)

  await mkdir(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${name}.json`)
  const json = { benchmark: name, title: result.title, machine, durationSeconds: Number(durationS.toFixed(2)), params: result.params ?? {}, rows: result.rows, notes: result.notes ?? [] }
  await writeFile(file, JSON.stringify(json, null, 2) + '\n')
  out.write(`\nwrote ${file}\n`)
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`)
    process.exitCode = 1
  },
)
