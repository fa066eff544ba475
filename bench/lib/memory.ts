import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

let gcFn: (() => void) | undefined

/** A full garbage collection of this process, without having to start node with --expose-gc. */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    const global = (globalThis as { gc?: () => void }).gc
    if (typeof global === 'function') gcFn = global
    else {
      setFlagsFromString('--expose-gc')
      gcFn = runInNewContext('gc') as () => void
    }
  }
  gcFn()
}

/** V8 heap in use after two full collections, in bytes: compare two readings to size what was allocated in between. */
export function heapUsedAfterGc(): number {
  collectGarbage()
  collectGarbage()
  return process.memoryUsage().heapUsed
}
