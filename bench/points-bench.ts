// `npm run bench -- --only points`: the receiver's commit of one bundle with restore points on
// (pre-images captured in the journal phase, record synced and put in place, retention) and
// off, same bundle, same replica, alternating, in one run. The bundle is 1% of the disk's
// blocks, scattered, a tenth of them zero runs; the receiver is driven in-process through
// handleConnection (the same session `vdrep serve` runs), so the figure is journal + capture +
// apply + commit, until COMMITTED: what a push waits for on the replica host (retention runs
// after the answer, under the replica lock; the whole session is reported beside it). Target:
// on ≤ 1.5× off.
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
  for (let off = 0; off < size; off += 4 << 20) if ((off >> 22) % 2 === 0) await fh.write(crypto.randomBytes(4 << 20), 0, 4 << 20, off)
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

export async function runPointsBench(opts: BenchOptions): Promise<BenchRow[]> {
  const size = Math.min(opts.size, 1 << 30)
  const on = path.join(opts.workDir, 'points-on')
  const off = path.join(opts.workDir, 'points-off')
  for (const d of [on, off]) await fs.mkdir(d, {recursive: true})
  await makeReplica(on, size, 'count:100000')
  await makeReplica(off, size, 'off')
  const bundle = makeBundle(size)
  const runs = Math.max(3, opts.runs * 2)
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
  const bytes = bundle.blocks * BS
  const note = `${bundle.blocks} blocks`
  return [
    row('points', 'commit of a 1% bundle, restore points off', t.off, bytes, note),
    row('points', 'commit of a 1% bundle, restore points on', t.on, bytes, note),
    row('points', 'session incl. retention, points off', t.offTotal, bytes, note),
    row('points', 'session incl. retention, points on', t.onTotal, bytes, `${note}; retention walks ${runs + 1} records`),
  ]
}

export function pointsChecks(rows: BenchRow[]): BenchCheck[] {
  const off = rows.find((r) => r.name.endsWith('restore points off'))
  const on = rows.find((r) => r.name.endsWith('restore points on'))
  if (!off || !on) return [{label: 'restore points on / off', target: '≤ 1.5×', note: 'skipped'}]
  const ratio = on.seconds / off.seconds
  return [
    {
      label: 'restore points on / off (commit of one bundle)',
      ratio,
      target: '≤ 1.5×',
      pass: ratio <= 1.5,
      note: `medians ${median(on.runs).toFixed(3)} s / ${median(off.runs).toFixed(3)} s`,
    },
  ]
}
