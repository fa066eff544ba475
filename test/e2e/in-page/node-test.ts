/**
 * The part of `node:test` that test/conformance/rtc-suite.ts uses, for running that suite inside a page
 * (bundled by test/e2e/rtc-conformance-browser.test.ts): `describe` and `it` register, `runRegistered`
 * runs them one at a time with their timeouts and `after` hooks, and reports each.
 */
export interface TestContext {
  after(fn: () => unknown): void
  diagnostic(message: string): void
}
type TestFn = (t: TestContext) => unknown
interface Registered {
  readonly name: string
  readonly timeoutMs: number
  readonly fn: TestFn
}
export interface TestOutcome {
  readonly name: string
  readonly ok: boolean
  readonly ms: number
  readonly error?: string
  readonly diagnostics: readonly string[]
}

const registered: Registered[] = []
const path: string[] = []

export function describe(name: string, fn: () => void): void {
  path.push(name)
  try {
    fn()
  } finally {
    path.pop()
  }
}

export function it(name: string, optionsOrFn: { timeout?: number } | TestFn, maybeFn?: TestFn): void {
  const fn = typeof optionsOrFn === 'function' ? optionsOrFn : (maybeFn as TestFn)
  const timeoutMs = typeof optionsOrFn === 'function' ? 60_000 : (optionsOrFn.timeout ?? 60_000)
  registered.push({ name: [...path, name].join(' › '), timeoutMs, fn })
}

/** Runs every registered test in order; `after` hooks run in the order they were added, as node:test does. */
export async function runRegistered(only?: string): Promise<TestOutcome[]> {
  const outcomes: TestOutcome[] = []
  for (const test of registered.filter((r) => only === undefined || r.name.includes(only))) {
    const hooks: Array<() => unknown> = []
    const diagnostics: string[] = []
    const started = performance.now()
    let error: string | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      await Promise.race([
        Promise.resolve().then(() => test.fn({ after: (fn) => hooks.push(fn), diagnostic: (m) => diagnostics.push(m) })),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${test.timeoutMs} ms`)), test.timeoutMs))),
      ])
    } catch (e) {
      error = e instanceof Error ? `${e.name}: ${e.message}` : String(e)
    } finally {
      clearTimeout(timer)
    }
    for (const hook of hooks) {
      try {
        await hook()
      } catch (e) {
        error ??= `after hook: ${e instanceof Error ? e.message : String(e)}`
      }
    }
    outcomes.push({ name: test.name, ok: error === undefined, ms: performance.now() - started, diagnostics, ...(error !== undefined ? { error } : {}) })
  }
  return outcomes
}
