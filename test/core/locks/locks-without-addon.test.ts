// Every lock of src/core/locks/ with the addon's kernel locks out of reach (forced off here,
// VDREP_NO_NATIVE=1 in the other process): two processes never both hold one, the refusal is
// the lock's own LockError (exit 3), and the lock is free again when its holder dies.

import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import fs from 'node:fs'
import path from 'node:path'

import {LockError} from '../../../src/core/errors.js'
import {acquireDiskLock, checkNoUnreachableTracker, kernelLocksInUse, lockHeaderSlots, lockReplicaFile, TrackerLock} from '../../../src/core/locks/index.js'
import {tryLockFile} from '../../../src/core/locks/exclusive-lock.js'
import {__forceFallbackForTests} from '../../../src/core/native/binding.js'
import {FdFixtures} from '../native/fd-fixtures.js'

const locksUrl = new URL('../../../src/core/locks/index.js', import.meta.url).href
const SLOTS = {start: 0, length: 8192}

type Kind = 'disk' | 'ownership' | 'replica' | 'header'

/** A child without the addon that takes lock `kind` of `file`, says "held" or the error's code, and keeps it until killed. */
async function childTakes(kind: Kind, file: string): Promise<{child: ChildProcess; said: string}> {
  const f = JSON.stringify(file)
  const take: Record<Kind, string> = {
    disk: `await m.acquireDiskLock(${f}, 'push')`,
    ownership: `await m.TrackerLock.acquire(${f}, ${f} + '.psf', 'tracker')`,
    replica: `await m.lockReplicaFile(${f}, 'the test')`,
    header: `await m.lockHeaderSlots(fs.openSync(${f} + '.psf', 'r+'), ${f} + '.psf', ${JSON.stringify(SLOTS)}, 100)`,
  }
  const script = `import fs from 'node:fs'
    const m = await import(${JSON.stringify(locksUrl)})
    if (m.kernelLocksInUse()) throw new Error('the child uses the kernel locks')
    try { globalThis.held = ${take[kind]}; process.stdout.write('held\\n') } catch (e) { process.stdout.write(e.code + '\\n') }
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {...process.env, VDREP_NO_NATIVE: '1'},
  })
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  return {child, said: chunk.toString().trim()}
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

/** Take lock `kind` of `file` here; returns its release. */
async function takeHere(kind: Kind, file: string, fx: FdFixtures): Promise<() => Promise<void>> {
  switch (kind) {
    case 'disk': {
      const l = await acquireDiskLock(file, 'fullsync')
      return () => l.release()
    }
    case 'ownership': {
      const l = await TrackerLock.acquire(file, `${file}.psf`, 'scan')
      return async () => l.release()
    }
    case 'replica': {
      const release = await lockReplicaFile(file, 'the other process')
      return async () => release()
    }
    case 'header': {
      const release = await lockHeaderSlots(fx.open(`${file}.psf`), `${file}.psf`, SLOTS, 100)
      return async () => release()
    }
  }
}

const isLocked = (err: unknown) => err instanceof LockError && err.exitCode === 3

describe('core/locks without the addon', function () {
  let fx: FdFixtures
  before(() => {
    fx = new FdFixtures('vdrep-locks-fallback-')
  })
  beforeEach(() => __forceFallbackForTests(true))
  afterEach(() => {
    fx.closeAll()
    __forceFallbackForTests(false)
  })
  after(() => fx.remove())

  it('uses the portable lock, not the kernel locks', () => {
    assert.equal(kernelLocksInUse(), false)
  })

  for (const kind of ['disk', 'ownership', 'replica', 'header'] as const) {
    it(`${kind} lock: a second process is refused while one holds it, both ways; a killed holder frees it`, async () => {
      const file = fx.filledFile(`${kind}.img`, 4096, 1)
      fx.filledFile(`${kind}.img.psf`, 16384, 0)
      // Here first: the child is refused.
      const release = await takeHere(kind, file, fx)
      const refused = await childTakes(kind, file)
      await kill(refused.child)
      assert.equal(refused.said, 'LOCKED')
      await release()
      // The child first: this process is refused, until the child dies.
      const holder = await childTakes(kind, file)
      try {
        assert.equal(holder.said, 'held')
        await assert.rejects(takeHere(kind, file, fx), isLocked)
      } finally {
        await kill(holder.child)
      }
      const again = await takeHere(kind, file, fx)
      await again()
    })
  }

  it('two descriptions of one file in one process exclude each other (as flock), whatever the path used', async () => {
    const file = fx.filledFile('same.img', 4096, 1)
    const link = path.join(fx.dir, 'link.img')
    fs.symlinkSync(file, link)
    const a = await tryLockFile(fx.open(file))
    assert.ok(a !== null)
    assert.equal(await tryLockFile(fx.open(link)), null, 'another path to the same file is the same lock')
    const range = await tryLockFile(fx.open(file), SLOTS)
    assert.ok(range !== null, 'a range lock is separate from the whole-file lock, as OFD locks are from flock')
    range.release()
    a.release()
    const b = await tryLockFile(fx.open(link))
    assert.ok(b !== null)
    b.release()
  })

  it('the ownership probe of a push sees a tracker that holds the .psf in another process', async () => {
    const file = fx.filledFile('probe.img', 4096, 1)
    fx.filledFile('probe.img.psf', 16384, 0)
    await checkNoUnreachableTracker(file, `${file}.psf`)
    const tracker = await childTakes('ownership', file)
    try {
      assert.equal(tracker.said, 'held')
      await assert.rejects(
        checkNoUnreachableTracker(file, `${file}.psf`),
        (e: unknown) => isLocked(e) && /nothing answers on its control socket/.test((e as Error).message),
      )
    } finally {
      await kill(tracker.child)
    }
    await checkNoUnreachableTracker(file, `${file}.psf`)
  })

  it('the header lock waits for a holder, then says who is stuck', async () => {
    const file = fx.filledFile('wait.img', 4096, 1)
    fx.filledFile('wait.img.psf', 16384, 0)
    const holder = await childTakes('header', file)
    try {
      const t = Date.now()
      await assert.rejects(
        lockHeaderSlots(fx.open(`${file}.psf`), `${file}.psf`, SLOTS, 300),
        (e: unknown) => isLocked(e) && /stayed locked by another process/.test((e as Error).message),
      )
      assert.ok(Date.now() - t >= 300, 'it waited')
    } finally {
      await kill(holder.child)
    }
  })
})
