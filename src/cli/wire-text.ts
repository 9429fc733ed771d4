// How a sync's summary line says what compression saved (push and fullsync share it).
import type {CompressionReport} from '../core/compress/negotiate.js'
import {formatBytes} from '../core/util/units.js'

/** ', 1.2 MB on the wire (zstd)' when runs went compressed. */
export function wireText(c: CompressionReport | undefined, wire: number | undefined): string {
  return c?.stats && c.stats.runs > 0 && wire !== undefined ? `, ${formatBytes(wire)} on the wire (${c.codec})` : ''
}
