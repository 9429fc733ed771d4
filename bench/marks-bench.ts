// The marks section of `npm run bench`: how long the tracker's dirty log takes to mark a
// whole-disk trim (every block at once, bit by bit with bounded memory, one batch), with the
// .psf write faked so only the marking is timed. This was a `< 2000 ms` assert in
// test/core/tracker/dirty-log.test.ts; the test keeps what the mark does (one batch, the
// pages it writes), the time is measured here.
//
//   node dist/bench/bench.js --only marks [--runs N]
import {Bitmap} from '../src/core/psf/bitmap.js'
import {BITS_PER_PAGE} from '../src/core/psf/layout.js'
import type {PsfFile} from '../src/core/psf/psf-file.js'
import {DirtyLog} from '../src/core/tracker/dirty-log.js'
import {median, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'

export const MARKS_SECTION = 'marks'
/** The bound the test used to assert, for the small case. */
const SMALL_TARGET_S = 2

/** Stands in for the .psf: takes the bitmap pages and writes nothing. */
const discardingPsf = {path: '/bench.psf', writeBitmap: async () => {}} as unknown as PsfFile

async function timeWholeDiskTrim(blocks: number): Promise<number> {
  const log = new DirtyLog(discardingPsf, new Bitmap(blocks), new Bitmap(blocks))
  log.active.set(5)
  const t = performance.now()
  await log.mark(1, blocks - 1)
  const s = (performance.now() - t) / 1000
  if (log.active.count() !== blocks - 1) throw new Error(`marked ${log.active.count()} of ${blocks - 1} blocks`)
  return s
}

export async function runMarksBench(opts: BenchOptions): Promise<{rows: BenchRow[]; checks: BenchCheck[]}> {
  const cases = [
    {name: 'dirty log: whole-disk trim, 16 bitmap pages (the unit test)', blocks: 16 * BITS_PER_PAGE + 3},
    {name: 'dirty log: whole-disk trim, 2 TiB disk at 64 KiB blocks', blocks: (2 * 2 ** 40) / (64 * 1024)},
  ]
  const rows: BenchRow[] = []
  for (const c of cases) {
    const runs: number[] = []
    for (let i = 0; i < Math.max(1, opts.runs); i++) runs.push(await timeWholeDiskTrim(c.blocks))
    rows.push({section: MARKS_SECTION, name: c.name, seconds: median(runs), bytes: 0, runs, note: `${c.blocks} blocks`})
  }
  const small = rows[0].seconds
  const checks: BenchCheck[] = [
    {label: `${rows[0].name} (s / ${SMALL_TARGET_S} s)`, ratio: small / SMALL_TARGET_S, target: '< 1.00', pass: small < SMALL_TARGET_S},
  ]
  return {rows, checks}
}
