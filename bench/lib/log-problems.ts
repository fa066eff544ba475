/** Warnings and errors in daemons' log lines, counted by message, with one example each (into `out`, when given). */
export function logProblems(lines: Iterable<string>, out = new Map<string, { count: number; example: string }>()): Map<string, { count: number; example: string }> {
  for (const line of lines) {
    const m = /^\S+ (warn|error) \[[^\]]*\] (.*?)(?: \w+=|$)/.exec(line)
    if (!m) continue
    const what = `${m[1]}: ${m[2]}`
    const seen = out.get(what)
    if (seen) seen.count++
    else out.set(what, { count: 1, example: line.length > 300 ? line.slice(0, 300) + '…' : line })
  }
  return out
}
