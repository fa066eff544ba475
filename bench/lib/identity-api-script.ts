import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

let script: Promise<string> | undefined

/**
 * identity-api.ts as a classic script (IIFE, openpgp.js in it), to run in a page before it loads
 * (`context.addInitScript`): pages that join through the router's /malla.js, which has no OpenPGP, make their keys
 * with it. Built once per run.
 */
export function identityApiScript(): Promise<string> {
  script ??= build({ entryPoints: [fileURLToPath(new URL('./identity-api.ts', import.meta.url))], bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022', logLevel: 'silent' }).then((out) => (out.outputFiles[0] as { text: string }).text)
  return script
}
