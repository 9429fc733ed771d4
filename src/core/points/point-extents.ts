// Which parts of a point read as zeros, for NBD block status: an export's clients (nbdcopy,
// qemu-img convert) then skip them and keep a copy sparse. A zero run of an undo record is
// zero; a data extent is data; what no record covers is the replica's, whose holes (and
// anything past its end) are zeros. Saying "data" is always safe, saying "zero" wrongly would
// make a client skip real bytes: so the caller checks, as for a read, that no commit touched
// the replica meanwhile (point-reader.ts), and anything uncertain is data.
import {seekData, seekHole} from '../native/holes.js'
import {findSegment, type Segment} from './overlay.js'

export interface PointExtent {
  length: number
  zero: boolean
}

/** Runs reported for one request at most (the client asks again for the rest). */
const MAX_RUNS = 1024

export async function extentsOf(
  index: Segment[],
  bs: number,
  replicaFd: number,
  offset: number,
  end: number,
): Promise<{value: PointExtent[]; touched: boolean}> {
  const runs: PointExtent[] = []
  const add = (length: number, zero: boolean) => {
    const last = runs[runs.length - 1]
    if (last && last.zero === zero) last.length += length
    else runs.push({length, zero})
  }
  let touched = false
  for (let pos = offset; pos < end && runs.length < MAX_RUNS;) {
    const block = Math.floor(pos / bs)
    const seg = index[findSegment(index, block)]
    if (seg && seg.block <= block) {
      const n = Math.min(end, (seg.block + seg.count) * bs) - pos
      add(n, seg.zero)
      pos += n
      continue
    }
    touched = true
    const gapEnd = Math.min(end, seg ? seg.block * bs : end)
    const data = seekData(replicaFd, pos)
    if (data < 0 || data >= gapEnd) {
      add(gapEnd - pos, true) // a hole, or past the replica's end
      pos = gapEnd
    } else if (data > pos) {
      add(data - pos, true)
      pos = data
    } else {
      const hole = seekHole(replicaFd, pos)
      const stop = hole <= pos ? gapEnd : Math.min(hole, gapEnd)
      add(stop - pos, false)
      pos = stop
    }
  }
  return {value: runs, touched}
}
