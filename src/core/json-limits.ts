/**
 * Limits on the JSON values a node takes in, checked at the edge so that nothing accepted can fail later:
 * a value nested thousands of levels deep parses (V8's parser is iterative) but overflows the stack of
 * every recursive step after it (serialising, comparing, hashing), and `1e309` parses as Infinity, which
 * JSON.stringify writes as `null`, turning a write into a removal.
 */

/**
 * Deepest nesting of objects and arrays in one entry, the entry object itself included. A table adds one
 * level, so a table stays within 32 levels: json-c's default depth, the most a LibreMesh router can parse.
 */
export const MAX_ENTRY_DEPTH = 31
/** The same bound for an entry's `data` (the entry object is one level above it). */
export const MAX_DATA_DEPTH = MAX_ENTRY_DEPTH - 1
/**
 * Largest entry, as its JSON text in characters: 64 KiB. shared-state carries small records (hosts,
 * links, offers of about 300 bytes); a larger value belongs on a data channel. The bound keeps what every
 * node stores, logs and relays per write small.
 */
export const MAX_ENTRY_CHARS = 64 * 1024
/** Largest `data` a node writes itself: the entry around it (author, TTL, clock) must still fit in MAX_ENTRY_CHARS. */
export const MAX_DATA_CHARS = 60 * 1024

/**
 * Why `value` is not acceptable (too deep, a non-finite number, too large), or undefined when it is.
 * Iterative, so the check itself cannot overflow the stack; it serialises only values whose worst case
 * (every character escaped) could pass the size bound.
 */
export function jsonLimitProblem(value: unknown, maxDepth: number, maxChars: number): string | undefined {
  // Each stack item is a value and its depth in containers (a scalar at the top is depth 0).
  const stack: Array<[unknown, number]> = [[value, 0]]
  let worstChars = 0
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number]
    if (typeof v === 'string') {
      worstChars += 6 * v.length + 3
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return 'numbers must be finite (1e309 and the like are refused)'
      worstChars += 25
    } else if (v !== null && typeof v === 'object') {
      if (depth + 1 > maxDepth) return `nested deeper than ${maxDepth} levels`
      worstChars += 2
      if (Array.isArray(v)) {
        for (const item of v) stack.push([item, depth + 1])
      } else {
        for (const key of Object.keys(v)) {
          worstChars += 6 * key.length + 4
          stack.push([(v as Record<string, unknown>)[key], depth + 1])
        }
      }
    } else if (v === null || typeof v === 'boolean') {
      worstChars += 6
    } else {
      return `${typeof v} is not a JSON value`
    }
  }
  if (worstChars > maxChars && JSON.stringify(value).length > maxChars) return `larger than ${maxChars} characters of JSON`
  return undefined
}

/**
 * Deepest nesting any JSON text malla reads may have: a table is at most 32 levels (MAX_ENTRY_DEPTH + 1), a
 * push frame or reconcile request wraps it once more; the rest is headroom. Deeper text is refused before it
 * is parsed: JSON.parse of thousands of levels costs milliseconds, which a sender could repeat at will.
 */
export const MAX_TEXT_DEPTH = 40

/** Whether JSON text nests deeper than `limit`: a scan of brackets outside strings, stopping as soon as it is. */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // Jump to the closing quote: one not escaped, i.e. after an even run of backslashes.
      let end = i
      for (;;) {
        end = text.indexOf('"', end + 1)
        if (end < 0) return false // unterminated: the parse refuses it
        let slashes = 0
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++
        if (slashes % 2 === 0) break
      }
      i = end
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}
