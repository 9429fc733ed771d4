// While a tracker runs it is the only writer of the .psf: a push's and a full sync's record
// transitions travel over the control socket (version 2, requests with data) and are run on
// the tracker's ChangeRecord. In-process: a real socket, a real .psf, no tracker process.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {HeaderFlag} from '../../../src/core/psf/header.js'
import {HASHES_PER_PAGE} from '../../../src/core/psf/layout.js'
import {newHeader, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {ChangeRecord} from '../../../src/core/change-record/change-record.js'
import {ControlServer} from '../../../src/core/tracker/control-server.js'
import {TrackerControlClient} from '../../../src/core/tracker/control-client.js'
import {recordTransitions} from '../../../src/core/tracker/control-record.js'
import {MAX_REQUEST_DATA} from '../../../src/core/tracker/control-protocol.js'
import {tempDir} from '../../helpers/disks.js'

/** A commit id, as a push or a full sync records it. */
const CID = Buffer.from('c0ffee00c0ffee00c0ffee00c0ffee00', 'hex')

const BS = 4096
const BLOCKS = 4 * HASHES_PER_PAGE + 3
const SIZE = BLOCKS * BS

describe('tracker control socket: record transitions run by the tracker', () => {
  let dir: string
  let file: string
  let record: ChangeRecord
  let server: ControlServer
  let client: TrackerControlClient

  beforeEach(async () => {
    dir = await tempDir('vdrep-ctlrec-')
    file = psfPathFor(path.join(dir, 'disk.img'))
    await ChangeRecord.init(file, {
      ...newHeader({diskSize: SIZE, blockSize: BS, hashAlgo: 1, settings: {target: '/x', rpoSeconds: 900, fullsyncPort: 1, deltaPort: 2}}),
      flags: HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.INDEX_VALID,
    })
    record = await ChangeRecord.openOwned(file)
    const transition = recordTransitions(record)
    const unused = () => Promise.reject(new Error('not in this test'))
    server = await ControlServer.listen(path.join(dir, 'ctl.sock'), {
      status: () => ({}),
      release: () => ({}),
      freeze: unused,
      read: unused,
      complete: unused,
      pending: () => {
        throw new Error('not in this test')
      },
      disconnected: () => {},
      transition: (_conn, req, data) => transition(req, data),
    })
    client = await TrackerControlClient.connect('/unused', {socketPath: server.path})
  })
  afterEach(async () => {
    await client.close()
    await server.close()
    await record.close()
    await fs.rm(dir, {recursive: true, force: true})
  })

  async function header() {
    const r = await ChangeRecord.openReadOnly(file)
    try {
      return {h: r.header, index: (await r.readIndex()).hashes}
    } finally {
      await r.close()
    }
  }

  it('a push: beginCommit, blockHashes, commit; adoptCommitted', async () => {
    await client.beginCommit(3)
    assert.equal((await header()).h.pendingSeq, 3)
    await client.storeBlockHashes(
      new Map([
        [5, Buffer.alloc(32, 5)],
        [BLOCKS - 1, Buffer.alloc(32, 9)],
      ]),
    )
    await client.commit({seq: 3, pointInTimeMs: 777, diskSize: SIZE, commitId: CID})
    const {h, index} = await header()
    assert.deepEqual([h.lastSeq, h.pendingSeq, h.lastSyncMs], [3, 0, 777])
    assert.deepEqual(h.lastCommit, CID)
    assert.deepEqual(index.subarray(5 * 32, 6 * 32), Buffer.alloc(32, 5))
    assert.deepEqual(index.subarray((BLOCKS - 1) * 32), Buffer.alloc(32, 9))
    await client.adoptCommitted(4)
    assert.equal((await header()).h.lastSeq, 4)
  })

  it('a full sync: beginFullSync, indexRun (the whole index), provedSync', async () => {
    await client.beginFullSync()
    assert.equal((await header()).h.flags & HeaderFlag.INDEX_VALID, 0)
    const whole = Buffer.alloc(BLOCKS * 32, 0x5a)
    await client.writeIndexRun(0, whole)
    await client.provedSync({diskSize: SIZE, replicaSeq: 6, syncedMs: 10, commitId: CID})
    const {h, index} = await header()
    assert.equal(h.flags, HeaderFlag.INDEX_VALID)
    assert.deepEqual([h.generation, h.lastSeq, h.lastSyncMs], [1, 6, 10])
    assert.deepEqual(h.lastCommit, CID)
    assert.deepEqual(index, whole)
  })

  it('refuses what does not fit the disk, and a stamp (the tracker owns CLEAN_SHUTDOWN); nothing written', async () => {
    await assert.rejects(
      client.commit({seq: 1, pointInTimeMs: 1, diskSize: SIZE + BS, commitId: CID}),
      /commit: a disk of \d+ bytes, but this tracker records one of/,
    )
    await assert.rejects(client.provedSync({diskSize: SIZE - BS, replicaSeq: 1, syncedMs: 1, commitId: CID}), /provedSync: a disk of/)
    await assert.rejects(client.writeIndexRun(1, Buffer.alloc(32)), /do not start an index page/)
    await assert.rejects(client.writeIndexRun(4 * HASHES_PER_PAGE, Buffer.alloc(4 * 32)), /do not start an index page inside the disk's/)
    await assert.rejects(client.storeBlockHashes(new Map([[BLOCKS, Buffer.alloc(32)]])), /outside the disk's/)
    await assert.rejects(
      client.commit({seq: 1, pointInTimeMs: 1, diskSize: SIZE, commitId: CID, stamp: {size: SIZE, mtimeNs: 1n, ctimeNs: 1n}}),
      /records no stamp/,
    )
    const {h} = await header()
    assert.deepEqual([h.lastSeq, h.generation, h.counter], [0, 0, 1n])
    await client.beginCommit(2) // the connection is still usable
    assert.equal((await header()).h.pendingSeq, 2)
  })

  it('splits what exceeds one request: block hashes of more entries than MAX_REQUEST_DATA holds', async function () {
    this.timeout(60_000)
    const many = new Map<number, Buffer>()
    const n = Math.floor(MAX_REQUEST_DATA / 40) + 5
    // Blocks repeat modulo the disk (a map keeps the last): the requests are what is tested.
    for (let i = 0; i < n; i++) many.set(i, Buffer.alloc(32, i & 0xff))
    await assert.rejects(client.storeBlockHashes(many), /outside the disk's/) // split, and each part checked
    const small = new Map([[0, Buffer.alloc(32, 1)]])
    await client.storeBlockHashes(small)
    assert.deepEqual((await header()).index.subarray(0, 32), Buffer.alloc(32, 1))
  })
})
