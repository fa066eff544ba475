/** A neighbour's name from its header: at most 64 characters, and none that could not be a host name. */
export function decodeName(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined
  try {
    const name = decodeURIComponent(raw)
    return name.length > 0 && name.length <= 64 && !/[\u0000-\u001f]/.test(name) ? name : undefined
  } catch {
    return undefined
  }
}
