/** A POST of raw text, timed and bounded, with no interpretation of the answer. */
export async function postText(
  url: string,
  body: string | Uint8Array,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; text: string; ms: number }> {
  const start = process.hrtime.bigint()
  const res = await fetch(url, {
    method: 'POST',
    body: body as BodyInit,
    headers: { 'content-type': 'application/json', ...options.headers },
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  })
  const text = await res.text()
  return { status: res.status, text, ms: Number(process.hrtime.bigint() - start) / 1e6 }
}
