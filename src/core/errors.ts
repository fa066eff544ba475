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
