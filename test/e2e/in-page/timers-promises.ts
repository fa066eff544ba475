/** `node:timers/promises`'s `setTimeout`, for the in-page run of the RTC suite. */
export function setTimeout<T = void>(ms: number, value?: T): Promise<T> {
  return new Promise((resolve) => globalThis.setTimeout(() => resolve(value as T), ms))
}
