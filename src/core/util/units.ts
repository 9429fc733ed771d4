// Sizes and durations as users type them (64k, 1MiB, 15m, 1h), on top of the `bytes` and
// `ms` packages, with the limits checked here so every command reports them the same way.
import bytesLib from 'bytes'
import {UsageError} from '../errors.js'

/** "64k", "64KiB", "1M", "65536" → bytes (binary units). */
export function parseSize(input: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(input)
  const n = m ? bytesLib.parse(`${m[1]}${m[2] ? `${m[2]}b` : ''}`) : null
  if (n === null || !Number.isFinite(n) || n < 0)
    throw new UsageError('BAD_SIZE', `${what}: cannot read '${input}' as a size`, {hint: 'use a number of bytes or a suffix: 64k, 4M, 1G'})
  return Math.floor(n)
}

const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** Bytes in IEC units (1024-based, said so): "512 MiB", "1.5 KiB", "1023 B". */
export function formatBytes(n: number): string {
  let v = n
  let u = 0
  while (Math.abs(v) >= 1024 && u < IEC.length - 1) {
    v /= 1024
    u++
  }
  const shown = u === 0 ? String(v) : String(Number(v.toFixed(1)))
  return `${shown} ${IEC[u]}`
}

/** One term of a duration: a number and its unit ("1h", "30m", "1.5d", "500ms"). */
const TERM = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/y
const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000}

/**
 * "15m", "1h30m", "1d 12h", "90s" → seconds. A unit is required: a bare "15" was read as 15
 * seconds where users meant minutes, so it is refused with a hint instead of guessed.
 */
export function parseDuration(input: string, what: string): number {
  const text = input.trim().toLowerCase()
  let ms = 0
  let at = 0
  let terms = 0
  while (at < text.length) {
    TERM.lastIndex = at
    const m = TERM.exec(text)
    if (!m) break
    ms += Number(m[1]) * (UNIT_MS[m[2]] as number)
    at = TERM.lastIndex
    while (text[at] === ' ') at++
    terms++
  }
  // Rounded first, so that "1ms" is refused rather than read as 0 seconds.
  const seconds = terms > 0 && at === text.length ? Math.round(ms / 1000) : NaN
  if (!Number.isFinite(seconds) || seconds <= 0) {
    const bare = /^\d+(\.\d+)?$/.test(text)
    throw new UsageError('BAD_DURATION', `${what}: cannot read '${input}' as a duration${bare ? ' (a number needs a unit)' : ''}`, {
      hint: bare ? `say which you mean: ${text}s, ${text}m or ${text}h` : 'use numbers with units: 90s, 15m, 1h30m, 1d',
    })
  }
  return seconds
}

const SPANS: Array<[string, number]> = [
  ['d', 86_400],
  ['h', 3_600],
  ['m', 60],
  ['s', 1],
]

/** Seconds as people write them, to the two largest units: 90 → "1m30s", 5400 → "1h30m", 86400 → "1d". */
export function formatDuration(seconds: number): string {
  let rest = Math.max(0, Math.floor(seconds))
  const parts: string[] = []
  for (const [unit, size] of SPANS) {
    if (rest >= size || (unit === 's' && parts.length === 0)) {
      const n = Math.floor(rest / size)
      rest -= n * size
      if (n > 0 || parts.length === 0) parts.push(`${n}${unit}`)
    } else if (parts.length > 0) break // no gaps: "1d" and not "1d5s"
    if (parts.length === 2) break
  }
  return parts.join('')
}
