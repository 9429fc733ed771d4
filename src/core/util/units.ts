// Sizes and durations as users type them (64k, 1MiB, 15m, 1h), on top of the `bytes` and
// `ms` packages, with the limits checked here so every command reports them the same way.
import bytesLib from 'bytes'
import msLib from 'ms'
import {UsageError} from '../errors.js'

/** "64k", "64KiB", "1M", "65536" → bytes (binary units). */
export function parseSize(input: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(input)
  const n = m ? bytesLib.parse(`${m[1]}${m[2] ? `${m[2]}b` : ''}`) : null
  if (n === null || !Number.isFinite(n) || n < 0)
    throw new UsageError('BAD_SIZE', `${what}: cannot read '${input}' as a size`, {hint: 'use a number of bytes or a suffix: 64k, 4M, 1G'})
  return Math.floor(n)
}

export function formatBytes(n: number): string {
  return bytesLib.format(n, {unitSeparator: ' ', decimalPlaces: 1}) ?? `${n} B`
}

/** "15m", "1h", "90s" → seconds. */
export function parseDuration(input: string, what: string): number {
  let v: number | undefined
  try {
    v = /^\d+$/.test(input.trim()) ? Number(input) * 1000 : (msLib(input.trim() as msLib.StringValue) as number | undefined)
  } catch {
    v = undefined // ms throws a plain Error on an empty string
  }
  // Rounded first, so that "1ms" is refused rather than read as 0 seconds.
  const seconds = v === undefined ? NaN : Math.round(v / 1000)
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new UsageError('BAD_DURATION', `${what}: cannot read '${input}' as a duration`, {hint: 'use a number with a unit: 5m, 90m, 1h, 24h'})
  return seconds
}

export function formatDuration(seconds: number): string {
  return msLib(seconds * 1000, {long: false})
}
