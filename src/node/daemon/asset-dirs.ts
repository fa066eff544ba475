import { fileURLToPath } from 'node:url'

/** Set to true by the single-file build (scripts/build-single.ts); absent in the package's modules. */
declare const MALLA_SINGLE_FILE: boolean | undefined

/**
 * Where the daemon reads the built page assets (`web`: the app served at `/`; `browser`: `/malla.js`).
 * The package's modules sit at `src/node/daemon/` or `dist/node/daemon/`, three levels under the package, so
 * they read `dist/<name>/`. The single file `malla.mjs` embeds no assets: it reads `<name>/` beside itself, so
 * a router can do without the app (a daemon without it answers `/` with 404 and serves everything else).
 */
export function assetDir(name: 'web' | 'browser'): string {
  const single = typeof MALLA_SINGLE_FILE !== 'undefined' && MALLA_SINGLE_FILE
  return fileURLToPath(new URL(single ? `./${name}/` : `../../../dist/${name}/`, import.meta.url))
}
