// The small JSON side files vdrep keeps beside a record (`.vdrep-last`, `.vdrep-running`): each
// starts with a magic name and a version, and a reader takes nothing else (a file another
// program or version wrote reads as absent, never as a half-understood record).

/** The object of a side file with this magic and version; null for anything else. */
export function parseSideFile(text: string, magic: string, version: number): Record<string, unknown> | null {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null
  const o = v as Record<string, unknown>
  return o.magic === magic && o.version === version ? o : null
}

/** A side file's bytes: magic and version first, then the fields, one line. */
export function encodeSideFile(magic: string, version: number, fields: object): Buffer {
  return Buffer.from(`${JSON.stringify({magic, version, ...fields})}\n`)
}

/** A positive whole number of milliseconds (or pid): what every time field of a side file is. */
export const isPositiveInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x > 0
