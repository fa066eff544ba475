import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { memoryMode, tuneHeapForDaemon } from '../../src/node/daemon/heap-tuning.js'

const TUNING = fileURLToPath(new URL('../../src/node/daemon/heap-tuning.ts', import.meta.url))

/**
 * Whether V8 optimizes a hot function with TurboFan in a fresh process after `--memory <mode>`'s flags: what
 * lean mode gives up, asked of V8 itself (natives syntax, turned on from inside as the flags are).
 */
async function turbofanAfter(mode: 'lean' | 'fast'): Promise<boolean> {
  const script = `
    import { setFlagsFromString } from 'node:v8'
    import { tuneHeapForDaemon } from ${JSON.stringify(TUNING)}
    tuneHeapForDaemon(${JSON.stringify(mode)}, {})
    setFlagsFromString('--allow-natives-syntax')
    const probe = new Function(\`
      function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += i * 2; return s }
      %PrepareFunctionForOptimization(hot); hot(10); hot(10);
      %OptimizeFunctionOnNextCall(hot); hot(10);
      return %ActiveTierIsTurbofan(hot);\`)
    console.log(JSON.stringify(probe()))`
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000 })
  return JSON.parse(stdout) as boolean
}

describe('--memory', () => {
  it('auto is lean below 1 GiB of RAM (routers) and fast above; a mode given is kept', () => {
    assert.equal(memoryMode('auto', 128 * 1024 ** 2), 'lean')
    assert.equal(memoryMode('auto', 1024 ** 3 - 1), 'lean')
    assert.equal(memoryMode('auto', 1024 ** 3), 'fast')
    assert.equal(memoryMode('lean', 64 * 1024 ** 3), 'lean')
    assert.equal(memoryMode('fast', 64 * 1024 ** 2), 'fast')
  })

  it('lean turns the optimizing compiler off in the process, fast leaves it on', async () => {
    assert.equal(await turbofanAfter('fast'), true)
    assert.equal(await turbofanAfter('lean'), false)
  })

  it('MALLA_HEAP_TUNING=0 sets no flag', () => {
    assert.deepEqual(tuneHeapForDaemon('lean', { MALLA_HEAP_TUNING: '0' }), [])
  })
})
