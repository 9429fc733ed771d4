// `npm run bench -- --only points`: the receiver's commit of one bundle with restore points on
// (pre-images captured in the journal phase, record synced and put in place, retention) and
// off, same bundle, same replica, alternating, in one run. The bundle is 1% of the disk's
// blocks, scattered, a tenth of them zero runs; the receiver is driven in-process through
// handleConnection (the same session `vdrep serve` runs), so the figure is journal + capture +
// apply + commit, until COMMITTED: what a push waits for on the replica host (retention runs
// after the answer, under the replica lock; the whole session is reported beside it). Target:
// on ≤ 1.5× off, at three disk sizes (pointsSizes).
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {Duplex} from 'node:stream'
import {median, row, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {blockHasher, HashAlgo} from '../src/core/hash/block-hash.js'
import {digestData, digestZero} from '../src/core/protocol/bundle-digest.js'
import {encodeFrameHeader, FrameType, PROTOCOL_VERSION, type FrameTypeId} from '../src/core/protocol/frame.js'
import {encodeBundleBegin, encodeBundleEnd, encodeDataFields, encodeHello, encodeRange, SyncMode} from '../src/core/protocol/messages.js'
import {readReplicaState, writeReplicaState} from '../src/core/receiver/replica-state.js'
import {handleConnection} from '../src/core/receiver/session.js'

const BS = 64 * 1024
const ID = crypto.randomBytes(16)

function frame(type: FrameTypeId, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts)
  return Buffer.concat([encodeFrameHeader(type, payload.length), payload])
}

class Client extends Duplex {
  /** When the receiver last wrote: its COMMITTED answer, the last frame before retention runs. */
  lastWrite = 0
  constructor(private readonly chunks: Buffer[]) {
    super()
  }
  override _read(): void {
    for (const c of this.chunks) this.push(c)
    this.push(null)
  }
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.lastWrite = performance.now()
    cb()
  }
}

interface Bundle {
  body: Buffer[]
  blocks: number
  digest: Buffer
}

function makeBundle(size: number): Bundle {
  const hasher = blockHasher(HashAlgo.XXH3, ID)
  const total = size / BS
  const picks = [...new Set(Array.from({length: Math.ceil(total / 100)}, () => crypto.randomInt(total)))].sort((a, b) => a - b)
  const digest = hasher.createStream()
  const body: Buffer[] = []
  for (const [i, b] of picks.entries()) {
    if (i % 10 === 9) {
      body.push(frame(FrameType.ZERO_RUN, encodeRange(b, 1)))
      digestZero(digest, b, 1)
    } else {
      const data = crypto.randomBytes(BS)
      const h = hasher.hash(data)
      body.push(frame(FrameType.DATA, encodeDataFields(b, h), data))
      digestData(digest, b, h)
    }
  }
  return {body, blocks: picks.length, digest: digest.digest()}
}

async function commitOnce(root: string, size: number, b: Bundle): Promise<{committed: number; total: number}> {
  const replica = path.join(root, 'r.img')
  const {state} = await readReplicaState(replica)
  const seq = state!.lastSeq + 1
  const hello = {version: PROTOCOL_VERSION, mode: SyncMode.DELTA, hashAlgo: HashAlgo.XXH3, blockSize: BS, diskSize: size, replicaId: ID, flags: 0}
  const chunks = [
    frame(FrameType.HELLO, encodeHello({...hello, lastCommit: Buffer.alloc(16), nextCommit: crypto.randomBytes(16), path: 'r.img'})),
    frame(FrameType.BUNDLE_BEGIN, encodeBundleBegin({seq, blockCount: b.blocks, diskSize: size})),
    ...b.body,
    frame(FrameType.BUNDLE_END, encodeBundleEnd({seq, blockCount: b.blocks, digest: b.digest})),
  ]
  const errors: string[] = []
  const client = new Client(chunks)
  const t = performance.now()
  await handleConnection(client, {root, modes: [SyncMode.DELTA], log: (l) => (/refused|failed/.test(l) ? errors.push(l) : undefined)})
  const total = (performance.now() - t) / 1000
  if (errors.length > 0) throw new Error(`points bench: ${errors.join('; ')}`)
  return {committed: (client.lastWrite - t) / 1000, total}
}

async function makeReplica(root: string, size: number, retention: string): Promise<void> {
  const replica = path.join(root, 'r.img')
  const fh = await fs.open(replica, 'w', 0o600)
  // Every other 4 MiB written (the rest holes), each chunk made different by its first bytes.
  const chunk = crypto.randomBytes(4 << 20)
  for (let off = 0; off < size; off += 4 << 20) {
    if ((off / (4 << 20)) % 2 !== 0) continue
    chunk.writeDoubleLE(off, 0)
    await fh.write(chunk, 0, Math.min(4 << 20, size - off), off)
  }
  await fh.truncate(size)
  await fh.sync()
  await fh.close()
  const st = await fs.stat(replica, {bigint: true})
  await writeReplicaState(replica, {
    replicaId: ID.toString('hex'),
    complete: true,
    resumeBlock: 0,
    diskSize: size,
    blockSize: BS,
    hashAlgo: HashAlgo.XXH3,
    generation: 1,
    lastSeq: 1,
    digest: '',
    size,
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    updatedMs: Date.now(),
    retention,
  })
}

/** The disk sizes timed: a quarter of `--size`, `--size`, four times it (default 256 MiB, 1 GiB, 4 GiB). */
export function pointsSizes(size: number): number[] {
  return [...new Set([size / 4, size, size * 4].map((n) => Math.max(BS * 100, Math.floor(n / BS) * BS)))]
}

const label = (n: number) => (n >= 1 << 30 ? `${n / 2 ** 30} GiB` : `${n / 2 ** 20} MiB`)

async function benchSize(workDir: string, size: number, runs: number): Promise<BenchRow[]> {
  const on = path.join(workDir, `points-on-${size}`)
  const off = path.join(workDir, `points-off-${size}`)
  for (const d of [on, off]) await fs.mkdir(d, {recursive: true})
  await makeReplica(on, size, 'count:100000')
  await makeReplica(off, size, 'off')
  const bundle = makeBundle(size)
  const t = {on: [] as number[], off: [] as number[], onTotal: [] as number[], offTotal: [] as number[]}
  await commitOnce(off, size, bundle) // warm both (code paths, page cache)
  await commitOnce(on, size, bundle)
  for (let i = 0; i < runs; i++) {
    const a = await commitOnce(off, size, bundle)
    const b = await commitOnce(on, size, bundle)
    t.off.push(a.committed)
    t.offTotal.push(a.total)
    t.on.push(b.committed)
    t.onTotal.push(b.total)
  }
  for (const d of [on, off]) await fs.rm(d, {recursive: true, force: true})
  const bytes = bundle.blocks * BS
  const note = `${bundle.blocks} blocks`
  const of = `1% of ${label(size)}`
  return [
    row('points', `commit of ${of}, restore points off`, t.off, bytes, note),
    row('points', `commit of ${of}, restore points on`, t.on, bytes, note),
    row('points', `session of ${of} incl. retention, off`, t.offTotal, bytes, note),
    row('points', `session of ${of} incl. retention, on`, t.onTotal, bytes, `${note}; retention walks ${runs + 1} records`),
  ]
}

export async function runPointsBench(opts: BenchOptions): Promise<BenchRow[]> {
  // Commits alternate on and off, so a slow moment of this shared machine hits both; the
  // medians of 9 pairs at least, since one commit of a small bundle is a few fsyncs.
  const runs = Math.max(9, opts.runs * 3)
  const rows: BenchRow[] = []
  for (const size of pointsSizes(opts.size)) rows.push(...(await benchSize(opts.workDir, size, runs)))
  return rows
}

export function pointsChecks(rows: BenchRow[]): BenchCheck[] {
  const checks: BenchCheck[] = []
  for (const off of rows.filter((r) => r.name.endsWith('restore points off'))) {
    const on = rows.find((r) => r.name === off.name.replace(/off$/, 'on'))
    if (!on) continue
    // Each on commit ran right after its off twin: the median of the pairs' ratios cancels what
    // this shared machine's load does between pairs, which the ratio of the medians does not.
    const ratio = median(on.runs.map((t, i) => t / off.runs[i]))
    checks.push({
      label: `restore points on / off (${off.name.replace(/^commit of (.*), restore points off$/, 'commit of $1')})`,
      ratio,
      target: '≤ 1.5×',
      pass: ratio <= 1.5,
      note: `median of ${on.runs.length} paired ratios; medians ${median(on.runs).toFixed(3)} s / ${median(off.runs).toFixed(3)} s (${(median(on.runs) / median(off.runs)).toFixed(2)}×)`,
    })
  }
  return checks.length > 0 ? checks : [{label: 'restore points on / off', target: '≤ 1.5×', note: 'skipped'}]
}
