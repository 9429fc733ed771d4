// Which blocks of a range are holes (SEEK_DATA/SEEK_HOLE), so both ends of a sync skip
// reading, zero-checking and hashing them: a sparse disk costs what its data costs. Where
// the file system or the fallback cannot tell, every block counts as data (always safe).
import {seekData, seekHole} from '../native/holes.js'

export interface HoleMap {
  /** 1 where the whole block lies in a hole (reads as zeros). */
  holes: Uint8Array
  /** Every block of the range is a hole: nothing to read at all. */
  allHoles: boolean
}

/**
 * Hole flags for blocks [first, first+count) of a file of `size` bytes, `bs` bytes a block.
 */
export function holeMap(fd: number, size: number, bs: number, first: number, count: number): HoleMap {
  const holes = new Uint8Array(count)
  const start = first * bs
  const end = Math.min(size, (first + count) * bs)
  const markHole = (a: number, b: number) => {
    // blocks lying wholly inside [a, b)
    const i0 = Math.ceil((a - start) / bs)
    for (let i = i0; i < count; i++) {
      const blockEnd = Math.min(size, start + (i + 1) * bs)
      if (blockEnd > b) break
      holes[i] = 1
    }
  }
  let pos = start
  while (pos < end) {
    const d = seekData(fd, pos)
    if (d < 0 || d >= end) {
      markHole(pos, end)
      break
    }
    if (d > pos) markHole(pos, d)
    const h = seekHole(fd, d)
    if (h < 0 || h >= end) break
    pos = h
  }
  let all = true
  for (const v of holes)
    if (!v) {
      all = false
      break
    }
  return {holes, allHoles: all}
}

/** The runs of non-hole blocks among the first `count` of a hole map, as [start, end) indexes. */
export function* dataRuns(holes: Uint8Array, count: number): Generator<[number, number]> {
  for (let i = 0; i < count;) {
    if (holes[i]) {
      i++
      continue
    }
    let end = i + 1
    while (end < count && !holes[end]) end++
    yield [i, end]
    i = end
  }
}
