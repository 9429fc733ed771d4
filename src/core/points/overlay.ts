// Which record holds each block of an older point: for point P, the records from P up to the
// newest are laid over the replica, and for a block several of them hold, the oldest wins (it
// is the block as it was at P). Built once, in memory, as sorted non-overlapping segments, so
// a read finds its segments by binary search and issues one pread per segment piece. The same
// index is what a merge of records writes out (prune.ts).
import {ExtentKind} from './undo-format.js'
import type {UndoFile} from './undo-file.js'

export interface Segment {
  block: number
  count: number
  /** Index of the record in the overlay's file list. */
  file: number
  /** The record's extent, and how many of its blocks come before this segment. */
  extent: number
  skip: number
  zero: boolean
}

function segmentsOf(f: UndoFile, file: number): Segment[] {
  return f.extents.map((e, extent) => ({block: e.block, count: e.count, file, extent, skip: 0, zero: e.kind === ExtentKind.ZERO}))
}

/** `hi` wins over `lo` where both cover a block; both sorted and non-overlapping, and so is the result. */
export function overlay(hi: Segment[], lo: Segment[]): Segment[] {
  const out: Segment[] = []
  let i = 0
  for (const s of lo) {
    let start = s.block
    const end = s.block + s.count
    while (i < hi.length && hi[i].block + hi[i].count <= start) out.push(hi[i++])
    let j = i
    while (start < end) {
      if (j >= hi.length || hi[j].block >= end) {
        out.push(cut(s, start, end))
        break
      }
      const h = hi[j]
      if (h.block > start) out.push(cut(s, start, h.block))
      start = Math.max(start, h.block + h.count)
      j++
    }
  }
  while (i < hi.length) out.push(hi[i++])
  return out.sort((a, b) => a.block - b.block)
}

function cut(s: Segment, from: number, to: number): Segment {
  return {...s, block: from, count: to - from, skip: s.skip + (from - s.block)}
}

/** The index for the records `files`, oldest (highest priority) first. */
export function buildIndex(files: UndoFile[]): Segment[] {
  let acc: Segment[] = []
  files.forEach((f, k) => {
    acc = k === 0 ? segmentsOf(f, 0) : overlay(acc, segmentsOf(f, k))
  })
  return acc
}

/** The index of the first segment that ends after `block` (binary search). */
export function findSegment(index: Segment[], block: number): number {
  let lo = 0
  let hi = index.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (index[mid].block + index[mid].count <= block) lo = mid + 1
    else hi = mid
  }
  return lo
}
