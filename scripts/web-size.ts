/**
 * What the built web app weighs as a browser fetches it (gzip), from Vite's manifest: what the first load
 * needs (index.html, the entry and everything it imports statically, their CSS) and every file it can ever
 * load (the lazy chunks too), but for the OpenPGP library: a chunk of its own that loads when the page joins,
 * counted apart (`identityLibrary`). `npm run build` holds the app to its budgets with it; `bench/webapp`
 * reports it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { gzipSync } from 'node:zlib'

/** First load, and everything (LibreMesh routers serve the app over slow mesh links, often to phones). */
export const WEB_BUDGET = { firstLoadGzip: 100 * 1000, totalGzip: 200 * 1000 } as const

interface ManifestChunk {
  readonly file: string
  readonly imports?: readonly string[]
  readonly css?: readonly string[]
  readonly isEntry?: boolean
}

export interface WebSize {
  readonly firstLoad: { readonly files: readonly string[]; readonly raw: number; readonly gzip: number }
  readonly total: { readonly files: readonly string[]; readonly raw: number; readonly gzip: number }
  /** openpgp.js's chunks, all of them, and `loaded`: those a page fetches on joining (the others serve RSA and NIST curves). */
  readonly identityLibrary: { readonly files: readonly string[]; readonly raw: number; readonly gzip: number; readonly loaded: { readonly files: readonly string[]; readonly gzip: number } }
}

const gz = (path: string) => gzipSync(readFileSync(path), { level: 9 }).length

export function webSize(dir: string): WebSize {
  const manifest = JSON.parse(readFileSync(join(dir, '.vite', 'manifest.json'), 'utf8')) as Record<string, ManifestChunk>
  const first = new Set<string>(['index.html'])
  const visit = (key: string) => {
    const chunk = manifest[key]
    if (!chunk || first.has(chunk.file)) return
    first.add(chunk.file)
    for (const css of chunk.css ?? []) first.add(css)
    for (const imported of chunk.imports ?? []) visit(imported)
  }
  for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key)
  const library = new Set(Object.entries(manifest).filter(([key]) => key.includes('node_modules/openpgp/')).map(([, chunk]) => chunk.file))
  const libraryEntry = Object.entries(manifest).find(([key]) => /node_modules\/openpgp\/.*openpgp(\.min)?\.mjs$/.test(key))?.[1]
  const loaded = libraryEntry ? [libraryEntry.file, ...(libraryEntry.imports ?? []).map((k) => manifest[k]?.file).filter((f): f is string => f !== undefined && library.has(f))] : []
  // What index.html itself names (the icon) is fetched on the first visit too.
  for (const m of readFileSync(join(dir, 'index.html'), 'utf8').matchAll(/(?:src|href)="\.\/([^"]+)"/g)) if (!(m[1] as string).endsWith('.tsx')) first.add(m[1] as string)
  const all: string[] = []
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name)
      if (statSync(path).isDirectory()) {
        if (name !== '.vite') walk(path)
      } else if (!name.endsWith('.map')) all.push(relative(dir, path).split(sep).join('/'))
    }
  }
  walk(dir)
  const sum = (files: readonly string[]) => ({ files, raw: files.reduce((n, f) => n + statSync(join(dir, f)).size, 0), gzip: files.reduce((n, f) => n + gz(join(dir, f)), 0) })
  return { firstLoad: sum([...first].sort()), total: sum(all.filter((f) => !library.has(f)).sort()), identityLibrary: { ...sum([...library].sort()), loaded: { files: loaded, gzip: loaded.reduce((n, f) => n + gz(join(dir, f)), 0) } } }
}
