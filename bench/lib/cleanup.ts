import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Things to undo when a benchmark ends, however it ends: `try { ... } finally { await cleanup.run() }`.
 * Steps run newest first; a failing step is reported and does not stop the others.
 */
export class Cleanup {
  private readonly steps: Array<{ what: string; fn: () => unknown }> = []

  add(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn })
  }

  /** A fresh temporary directory, removed at cleanup. */
  async tempDir(prefix = 'malla-bench-'): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    this.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }))
    return dir
  }

  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop() as { what: string; fn: () => unknown }
      try {
        await step.fn()
      } catch (e) {
        process.stderr.write(`bench cleanup: ${step.what} failed: ${(e as Error).message}\n`)
      }
    }
  }
}
