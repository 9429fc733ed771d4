// A full filesystem is "replica full" only when the receiver says so; the same errno on the
// client's host (its .psf, a log) is a local failure that names the file. /dev/full gives a
// real ENOSPC on every write.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import {asVdrepError, exitCodeOf, ExitCode, LocalFullError} from '../../../src/core/errors.js'
import {decodeError, encodeError} from '../../../src/core/protocol/messages.js'
import {errorFrameFields, receiverErrorOf} from '../../../src/core/receiver/receiver-error.js'
import {remoteErrorOf} from '../../../src/core/fullsync/client-replies.js'
import {namedFileHandle} from '../../../src/core/util/named-file-handle.js'

async function realEnospc(): Promise<NodeJS.ErrnoException> {
  const err = await fs.promises.writeFile('/dev/full', 'x').then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e,
  )
  assert.equal(err?.code, 'ENOSPC', '/dev/full should refuse writes with ENOSPC')
  return err!
}

describe('no space left', () => {
  it('on this host is LOCAL_FULL, exit 1, not REPLICA_FULL', async () => {
    const e = asVdrepError(await realEnospc())
    assert.equal(e.code, 'LOCAL_FULL')
    assert.equal(exitCodeOf(e), ExitCode.FAILURE)
    assert.match(e.message, /^no space left on this host: ENOSPC/)
    assert.doesNotMatch(`${e.message} ${e.hint}`, /replica (file|full)/)
  })

  it('on this host names the file when Node knows it', async () => {
    const e = asVdrepError(Object.assign(await realEnospc(), {path: '/vm/web.img.psf'}))
    assert.match(e.message, /^no space left on this host for \/vm\/web\.img\.psf: /)
  })

  it('wrapped by a lower layer on this host stays LOCAL_FULL', async () => {
    const e = asVdrepError(new LocalFullError('cannot write /vm/web.img.psf at 4096: ENOSPC', {cause: await realEnospc()}))
    assert.equal(e.code, 'LOCAL_FULL')
    assert.equal(exitCodeOf(e), 1)
  })

  it('seen by the receiver is REPLICA_FULL naming the replica, and the client exits 9 on it', async () => {
    const local = new LocalFullError('cannot write zeros to /srv/r/web.img at 0', {cause: await realEnospc()})
    for (const thrown of [await realEnospc(), local]) {
      const e = receiverErrorOf(thrown, '/srv/r/web.img')
      assert.equal(e.code, 'REPLICA_FULL')
      assert.match(e.message, /no space left on the replica host for \/srv\/r\/web\.img/)
      // Across the wire, as the client sees it.
      const seen = remoteErrorOf(encodeError(errorFrameFields(e)))
      assert.equal(seen.code, 'REPLICA_FULL')
      assert.equal(exitCodeOf(seen), ExitCode.REPLICA_FULL)
      assert.equal(decodeError(encodeError(errorFrameFields(e))).exitCode, 9)
    }
  })

  it('any other receiver failure keeps its own code', () => {
    const e = receiverErrorOf(Object.assign(new Error('EIO: i/o error, write'), {code: 'EIO', errno: -5}), '/srv/r/web.img')
    assert.equal(e.code, 'SYSTEM_ERROR')
    assert.equal(exitCodeOf(e), 1)
  })
})

describe('a full disk under the .psf', () => {
  it('is reported with the file it happened on', async () => {
    const fh = namedFileHandle(await fs.promises.open('/dev/full', 'r+'), '/dev/full')
    try {
      assert.equal(typeof fh.fd, 'number')
      const err = await fh.write(Buffer.alloc(512), 0, 512, 0).then(
        () => undefined,
        (e: unknown) => e,
      )
      const e = asVdrepError(err)
      assert.equal(e.code, 'LOCAL_FULL')
      assert.match(e.message, /^no space left on this host for \/dev\/full: ENOSPC/)
    } finally {
      await fh.close()
    }
  })
})
