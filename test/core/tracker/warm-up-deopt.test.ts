// What the tracker's warm-up (src/core/tracker/warm-up.ts) is for, checked on V8's own word: a
// VM's first requests (qemu's NBD client: NBD_OPT_GO, base:allocation, 16 writes in flight;
// then nbdcopy's, without base:allocation) find the request path compiled for them, and none of its compiled functions is thrown away
// ("deoptimized") on their account. Each such throw-away cost the VM's first pass a function
// run in the interpreter again and compiled again on its time: the warm-up's scratch stack
// differed from the real one in the classes of its objects (a closure per server, an activity
// log's counters made before the warm-up, the first queue of a backend, the session's features).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {resetRecord} from '../../../bench/tracker-bench-setup.js'
import {have} from '../../../bench/bench-common.js'
import {seededBytes, tempDir} from '../../helpers/disks.js'
import {VDREP_BIN} from '../../helpers/cli.js'
import {runOk} from './nbd/harness.js'
import {initDisk, MiB} from './tracker-helpers.js'

/** Where a deoptimization happened, from --trace-deopt-verbose: `;;; deoptimize at <file:...:line:col>`. */
const DEOPT_AT = /^\[bailout \(kind: ([^,]+), reason: ([^)]*)\): begin\. deoptimizing 0x[0-9a-f]+ <JSFunction ([^ >]*)[^\n]*\n\s*;;; deoptimize at <([^>]*)>/gm

describe('tracker warm-up: the VM finds the request path compiled', function () {
  this.timeout(120_000)
  let dir: string

  beforeEach(async () => {
    dir = await tempDir('vdrep-warm-up-deopt-')
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it("deoptimizes none of vdrep's functions in qemu's first writes after a cold start", async () => {
    const disk = path.join(dir, 'd.img')
    // 1 GiB (sparse): the size of the bench's disk; offsets near its end are not small integers.
    await fs.writeFile(disk, '')
    await fs.truncate(disk, 1024 * MiB)
    await fs.mkdir(path.join(dir, 'r'))
    await initDisk(disk, path.join(dir, 'r', 'd.img'))
    // As after a proved full sync and a clean stop: the activity log is in use (its path too).
    await resetRecord(disk)
    const sock = path.join(dir, 'nbd.sock')
    // V8 prints its trace on stdout through C's stdio, buffered unless told (stdbuf -o0), and the
    // tracker its serving line straight to the same fd: unbuffered, the order on the pipe is
    // the order of events. A long cap so a loaded host still runs every pass (a cut-short
    // warm-up compiles less, and proves less).
    const node = [process.execPath, '--trace-deopt-verbose', VDREP_BIN, 'track', disk, '--nbd', `unix:${sock}`]
    const child = spawn('stdbuf', ['-o0', ...node], {
      env: {...process.env, VDREP_TRACKER_WARMUP: '1', VDREP_TRACKER_WARMUP_MS: '10000'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.resume()
    const exited = new Promise((resolve) => child.once('close', resolve))
    try {
      const serving = /tracking \S+: NBD export/
      for (let i = 0; !serving.test(out); i++) {
        assert.ok(i < 600 && child.exitCode === null, `the tracker did not serve:\n${out.slice(-2000)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      const served = out.search(serving)
      // A VM's first pass: 128 MiB of sequential 64 KiB first writes, 16 in flight.
      await runOk('qemu-img', ['bench', '-w', '-f', 'raw', '-d', '16', '-s', '64k', '-c', '2048', `nbd+unix:///d.img?socket=${sock}`])
      // nbdcopy's session (no base:allocation), 16 writes in flight.
      if (have('nbdcopy')) {
        const src = path.join(dir, 'src.img')
        await fs.writeFile(src, seededBytes('nbdcopy source', 64 * MiB))
        await runOk('nbdcopy', ['--request-size=65536', '--requests=16', '--connections=1', src, `nbd+unix:///d.img?socket=${sock}`])
      }
      const before = [...out.slice(0, served).matchAll(DEOPT_AT)]
      // The trace is there (the warm-up's own scratch stack is thrown away in part as it ends).
      assert.ok(before.length > 0, 'V8 printed no deoptimization at all: is --trace-deopt-verbose still its flag?')
      // Deopts for "insufficient type feedback" (a branch the warm-up's run never took; V8 may
      // call them soft or eager) are left out: which branches a socket read takes depends on how
      // the kernel splits the stream, which a loaded host changes (CI: onRead, once in one run).
      // What this test guards is the kind of the values: wrong map, not a Smi, wrong call target.
      const ours = [...out.slice(served).matchAll(DEOPT_AT)]
        .filter((m) => !m[1].includes('soft') && !m[2].startsWith('Insufficient type feedback'))
        .filter((m) => m[4].includes('/dist/bundle/') || m[4].includes('/dist/src/'))
        .map((m) => `${m[3]} (${m[2]}) at ${m[4].replace(/^.*\/dist\//, 'dist/')}`)
      assert.deepEqual(ours, [], "the VM's first writes threw away vdrep's compiled code")
    } finally {
      child.kill('SIGTERM')
      await exited
    }
  })
})
