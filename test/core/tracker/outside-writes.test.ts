// Tests of src/core/tracker/outside-writes.ts: writes by other processes (dd, node) are
// reported with their pid, the process's own thread-pool writes are not, close() frees the fd,
// an unprivileged user gets either a file-handle watcher that hides other pids or a clean
// "unavailable: EPERM", and without the addon the start says so. Needs the addon; the
// fanotify cases skip where the kernel or the rights refuse (the reason is then asserted).

import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {__forceFallbackForTests, nativeAvailable} from '../../../src/core/native/binding.js'
import {type OutsideWrite, OutsideWriteWatcher, type OutsideWriteOptions} from '../../../src/core/tracker/outside-writes.js'
import {FdFixtures, MiB} from '../native/fd-fixtures.js'
import {ensureUser} from '../../helpers/users.js'

const OTHER_USER = 'vdreptest'
const MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/core/tracker/outside-writes.js')

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length
}

/** `node -e` writing one byte at offset 0 of file, synchronously; returns its pid. */
function nodeWrites(file: string): number {
  const r = spawnSync(process.execPath, ['-e', `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r+');fs.writeSync(fd,'x',0);`, file])
  assert.equal(r.status, 0, String(r.stderr))
  return r.pid!
}

function ddWrites(file: string): number {
  const r = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=4096', 'count=1', 'seek=3', 'conv=notrunc', 'status=none'])
  assert.equal(r.status, 0, String(r.stderr))
  return r.pid!
}

/** Starts a watcher that records what it reports; fails the test if it cannot watch. */
function watch(file: string, opts: Partial<OutsideWriteOptions> = {}): {watcher: OutsideWriteWatcher; seen: OutsideWrite[]} {
  const seen: OutsideWrite[] = []
  const started = OutsideWriteWatcher.start(file, {onOutsideWrite: (w) => seen.push(w), ...opts})
  assert.equal(started.status, 'watching', started.status === 'unavailable' ? started.message : '')
  return {watcher: (started as {watcher: OutsideWriteWatcher}).watcher, seen}
}

/** Whether the test's second user exists (created when running as root). */
function otherUser(): boolean {
  return ensureUser(OTHER_USER)
}

describe('tracker/outside-writes', function () {
  let f: FdFixtures
  let disk: string

  before(function () {
    if (!nativeAvailable) this.skip()
    f = new FdFixtures('vdrep-outside-')
    disk = f.filledFile('disk.img', MiB, 0)
    const probe = OutsideWriteWatcher.start(disk, {onOutsideWrite: () => undefined})
    if (probe.status === 'unavailable') {
      // Only a refusal the kernel or the rights explain may skip; anything else is a failure.
      assert.match(probe.code, /^(EPERM|ENOSYS|EMFILE)$/, probe.message)
      this.skip()
    }
    probe.watcher.close()
  })

  after(() => f?.remove())

  for (const mode of ['fid', 'fd'] as const) {
    describe(`${mode} mode`, () => {
      it('reports a dd and a node process writing the disk, with their pids', () => {
        const {watcher, seen} = watch(disk, {mode})
        try {
          const dd = ddWrites(disk)
          const node = nodeWrites(disk)
          const found = watcher.check()
          assert.ok(found)
          assert.deepEqual(
            found.pids,
            [dd, node].sort((a, b) => a - b),
          )
          assert.ok(found.modified && found.closedAfterWrite && !found.overflow)
          assert.deepEqual(seen, [found])
          assert.equal(watcher.check(), null, 'a drained queue reports nothing again')
        } finally {
          watcher.close()
        }
      })

      it('does not report the process own writes through fs/promises (the thread pool)', async () => {
        const {watcher, seen} = watch(disk, {mode})
        try {
          const h = await fsp.open(disk, 'r+')
          await Promise.all(Array.from({length: 16}, (_, i) => h.write(Buffer.alloc(4096, i), 0, 4096, i * 4096)))
          await h.truncate(MiB)
          await h.close()
          assert.equal(watcher.check(), null)
          assert.deepEqual(seen, [])
        } finally {
          watcher.close()
        }
      })

      it('close() returns what is still queued and frees the fd; event fds are never left open', () => {
        const before = openFds()
        const {watcher, seen} = watch(disk, {mode})
        assert.equal(openFds(), before + 1)
        for (let i = 0; i < 5; i++) nodeWrites(disk)
        assert.equal(openFds(), before + 1, 'nothing is read yet')
        const last = watcher.close()
        assert.equal(last?.pids.length, 5)
        assert.deepEqual(seen, [], 'close() does not call onOutsideWrite')
        assert.equal(openFds(), before)
        assert.equal(watcher.close(), null, 'a second close is a no-op')
      })
    })
  }

  it('reports from its timer (unref: it does not hold the process open)', async () => {
    let resolve!: (w: OutsideWrite) => void
    const reported = new Promise<OutsideWrite>((r) => (resolve = r))
    const {watcher} = watch(disk, {pollMs: 20, onOutsideWrite: resolve})
    try {
      const pid = ddWrites(disk)
      const w = await reported
      assert.deepEqual(w.pids, [pid])
    } finally {
      watcher.close()
    }
  })

  it('reports a process that opened the disk for writing and closed it without writing (how an mmap writer shows)', () => {
    const {watcher} = watch(disk)
    try {
      const r = spawnSync(process.execPath, ['-e', `require('fs').closeSync(require('fs').openSync(process.argv[1], 'r+'))`, disk])
      const found = watcher.check()
      assert.deepEqual(found?.pids, [r.pid])
      assert.ok(found.closedAfterWrite && !found.modified)
    } finally {
      watcher.close()
    }
  })

  it('known limit: a write through a shared mmap is not seen until the writer closes and unmaps', async function () {
    if (spawnSync('python3', ['-c', 'import mmap']).status !== 0) this.skip()
    // No timer drain while this test awaits: only its own check() calls read the queue.
    const {watcher} = watch(disk, {pollMs: 3_600_000})
    // Maps the disk, writes through the mapping, msyncs, says so, and exits when stdin closes.
    const script = `import mmap, sys
f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 4096); f.close()
m[0:4] = b'mmap'; m.flush(); print('written', flush=True); sys.stdin.read(); m.close()`
    const child = spawn('python3', ['-c', script, disk], {stdio: ['pipe', 'pipe', 'inherit']})
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve())
        child.once('exit', (code) => reject(new Error(`python3 exited ${code}`)))
      })
      assert.equal(fs.readFileSync(disk).subarray(0, 4).toString(), 'mmap')
      assert.equal(watcher.check(), null, 'the mapped write raised no FAN_MODIFY')
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.stdin.end()
      await exited
      const found = watcher.check()
      assert.deepEqual(found?.pids, [child.pid])
      assert.ok(found.closedAfterWrite && !found.modified)
    } finally {
      child.kill()
      watcher.close()
    }
  })

  it('with fd, watches the inode the tracker has open, not what the path names later', () => {
    const old = f.filledFile('moved.img', 64 * 1024, 0)
    const link = path.join(f.dir, 'old-inode.img')
    fs.linkSync(old, link)
    const fd = f.open(old)
    const {watcher} = watch(old, {fd})
    try {
      fs.rmSync(old)
      fs.writeFileSync(old, Buffer.alloc(64 * 1024)) // a new file under the old name
      nodeWrites(old)
      assert.equal(watcher.check(), null)
      const pid = nodeWrites(link)
      assert.deepEqual(watcher.check()?.pids, [pid])
    } finally {
      watcher.close()
    }
  })

  it('a block device node: a dd through the node by another process is reported', function () {
    const img = f.filledFile('loop.img', 4 * MiB, 0)
    const r = spawnSync('losetup', ['-f', '--show', img], {encoding: 'utf8'})
    if (r.status !== 0 || r.stdout.trim() === '') this.skip()
    const loop = r.stdout.trim()
    try {
      const {watcher} = watch(loop)
      try {
        const pid = ddWrites(loop)
        assert.deepEqual(watcher.check()?.pids, [pid])
        ddWrites(img) // the backing file is another inode: not this mark's business
        assert.equal(watcher.check(), null)
      } finally {
        watcher.close()
      }
    } finally {
      spawnSync('losetup', ['-d', loop])
    }
  })

  it('a read that fails is a loss: onLost once, then close() reports conservatively (pid 0)', () => {
    const lost: string[] = []
    const {watcher} = watch(disk, {onLost: (r) => lost.push(r)})
    const fd = watcher.fanotifyFd!
    fs.closeSync(fd)
    fs.closeSync(fs.openSync('/dev/null', 'r')) // the number may be reused: make sure it is not a fanotify fd
    assert.equal(watcher.check(), null)
    assert.equal(watcher.check(), null)
    assert.equal(lost.length, 1)
    assert.match(lost[0], /cannot read fanotify fd .*EBADF/)
    assert.equal(watcher.lost, lost[0])
    assert.deepEqual(watcher.close()?.pids, [0])
  })

  it('without the addon: unavailable NO_ADDON, no throw, nothing pretends to watch', () => {
    __forceFallbackForTests(true)
    try {
      const started = OutsideWriteWatcher.start(disk, {onOutsideWrite: () => assert.fail('no watcher')})
      assert.equal(started.status, 'unavailable')
      assert.equal(started.status === 'unavailable' && started.code, 'NO_ADDON')
    } finally {
      __forceFallbackForTests(false)
    }
  })

  it('a missing path: unavailable ENOENT, no throw', () => {
    const started = OutsideWriteWatcher.start(path.join(f.dir, 'nope.img'), {onOutsideWrite: () => undefined})
    assert.equal(started.status === 'unavailable' && started.code, 'ENOENT')
  })

  describe('as a second local user', function () {
    let shared: string
    before(function () {
      if (process.getuid?.() !== 0 || !otherUser()) this.skip()
      fs.chmodSync(f.dir, 0o755)
      shared = f.filledFile('shared.img', 64 * 1024, 0)
      fs.chmodSync(shared, 0o666)
    })

    // Starts a watcher as OTHER_USER, writes once itself and once from a child of its own, and
    // prints what start() and check() said.
    function asOtherUser(mode: string): {status: string; code?: string; pids?: number[]; threw?: string} {
      const script = `
        const [mod, file, mode] = process.argv.slice(1)
        import(mod).then(({OutsideWriteWatcher}) => {
          const fs = require('fs'), cp = require('child_process')
          let s
          try { s = OutsideWriteWatcher.start(file, {mode: mode || undefined, onOutsideWrite() {}}) }
          catch (e) { console.log(JSON.stringify({status: 'threw', threw: e.message})); return }
          if (s.status !== 'watching') { console.log(JSON.stringify({status: s.status, code: s.code})); return }
          fs.writeSync(fs.openSync(file, 'r+'), 'x', 0)
          cp.spawnSync('dd', ['if=/dev/zero', 'of=' + file, 'bs=512', 'count=1', 'conv=notrunc', 'status=none'])
          console.log(JSON.stringify({status: s.status, pids: s.watcher.close()?.pids}))
        })`
      const r = spawnSync('runuser', ['-u', OTHER_USER, '--', process.execPath, '-e', script, MODULE, shared, mode], {encoding: 'utf8'})
      assert.equal(r.status, 0, r.stderr)
      return JSON.parse(r.stdout) as {status: string; code?: string; pids?: number[]}
    }

    it('classic (fd) mode: unavailable EPERM, and start() does not throw', () => {
      assert.deepEqual(asOtherUser('fd'), {status: 'unavailable', code: 'EPERM'})
    })

    it('default mode: watches with file handles (Linux 5.13+) and sees the other writer as pid 0, its own writes not at all', () => {
      const got = asOtherUser('')
      if (got.status === 'unavailable') {
        assert.equal(got.code, 'EPERM') // a kernel before 5.13
        return
      }
      assert.deepEqual(got, {status: 'watching', pids: [0]})
    })
  })
})
