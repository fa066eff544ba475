/**
 * Every failure malla reports has a stable `code`, so callers branch on codes, never on messages.
 * The CLI maps codes to exit statuses the way LibreMesh's `shared-state` does (22 bad input, 165 lock).
 */
export type ErrorCode =
  | 'BAD_INPUT' // malformed JSON, wrong shape, bad type name, bad option
  | 'TOO_LARGE' // a body or file over its size limit
  | 'LOCK_FAILED' // another writer held a table for too long
  | 'STORAGE' // the disk refused a write (ENOSPC, EACCES...); the previous copy is intact
  | 'PEER' // a peer did not answer, answered garbage, or timed out
  | 'NOT_FOUND'
  | 'BUSY' // a peer asked for more work than its budget allows; retry later
  | 'FORBIDDEN' // an operator's verb asked from an address that may not use it
  | 'INTERNAL' // a programming error: never reported as bad input or as a disk error

const CODES: ReadonlySet<string> = new Set<ErrorCode>(['BAD_INPUT', 'TOO_LARGE', 'LOCK_FAILED', 'STORAGE', 'PEER', 'NOT_FOUND', 'BUSY', 'FORBIDDEN', 'INTERNAL'])

/** Whether a code read off the wire is one malla knows (a reply may carry anything). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && CODES.has(code)
}

export class MallaError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'MallaError'
  }
}

export const badInput = (message: string, options?: ErrorOptions) => new MallaError('BAD_INPUT', message, options)

export function isMallaError(e: unknown, code?: ErrorCode): e is MallaError {
  return e instanceof MallaError && (code === undefined || e.code === code)
}

/** Wraps anything thrown that is not a MallaError as INTERNAL: a bug, not the disk and not the caller. */
export function asMallaError(e: unknown, what = 'internal error'): MallaError {
  return isMallaError(e) ? e : new MallaError('INTERNAL', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
}
