// Block ranges for a person and a script: blocks added in ascending order are merged into runs
// (a run also needs the same reason), each with its byte offset and length on the disk.

export interface BlockRange {
  firstBlock: number
  blocks: number
  /** Byte offset on the disk, and bytes covered (the last block of the disk may be short). */
  offset: number
  bytes: number
  reason: string
}

/** Runs kept for the output; past it, blocks are still counted (`truncated` says so). */
export const MAX_RANGES = 100_000

export class RangeList {
  readonly ranges: BlockRange[] = []
  blocks = 0
  bytes = 0
  truncated = false
  private last: BlockRange | undefined

  constructor(
    private readonly blockSize: number,
    private readonly diskSize: number,
  ) {}

  add(block: number, reason: string): void {
    const len = Math.min(this.blockSize, this.diskSize - block * this.blockSize)
    this.blocks++
    this.bytes += len
    const last = this.last
    if (last && last.reason === reason && last.firstBlock + last.blocks === block) {
      last.blocks++
      last.bytes += len
      return
    }
    if (this.ranges.length >= MAX_RANGES) {
      this.truncated = true
      this.last = undefined
      return
    }
    this.last = {firstBlock: block, blocks: 1, offset: block * this.blockSize, bytes: len, reason}
    this.ranges.push(this.last)
  }

  toJSON(): {blocks: number; bytes: number; ranges: BlockRange[]; truncated: boolean} {
    return {blocks: this.blocks, bytes: this.bytes, ranges: this.ranges, truncated: this.truncated}
  }
}
