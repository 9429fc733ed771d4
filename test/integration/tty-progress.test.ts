// The phase spinner of `vdrep push` and `vdrep fullsync`: drawn on a terminal (a pseudo-TTY
// from util-linux `script`), never without one, and the cursor is shown again however the
// command ends (success, error, SIGINT).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {VDREP_BIN, vdrep} from '../helpers/cli.js'
import {makeMixedDisk, scribbleBlocks, tempDir} from '../helpers/disks.js'
import {markChanged} from '../helpers/change-record.js'

const MiB = 1 << 20
const BS = 64 * 1024
const HIDE_CURSOR = '\u001B[?25l'
const SHOW_CURSOR = '\u001B[?25h'
/** ora's default spinner (dots). */
const SPINNER_FRAME = /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

interface TtyRun {
  code: number | null
  signal: NodeJS.Signals | null
  /** Everything the command wrote to the terminal (stdout and stderr). */
  screen: string
}

/**
 * Runs vdrep on a pseudo-terminal of 80 columns. `onScreen` gets the pid of vdrep itself (script
 * starts a shell that execs it) once what it drew contains `when`.
 */
function onTty(args: string[], dir: string, when?: string, onScreen?: (pid: number) => void): Promise<TtyRun> {
  const pidFile = path.join(dir, `tty-${process.hrtime.bigint()}.pid`)
  const command = `stty cols 80 rows 24; echo $$ > ${quote(pidFile)}; exec ${quote(process.execPath)} ${quote(VDREP_BIN)} ${args.map(quote).join(' ')}`
  const env: NodeJS.ProcessEnv = {...process.env, TERM: 'xterm'}
  delete env['CI'] // ora and others draw nothing for CI
  const child = spawn('script', ['-qefc', command, '/dev/null'], {env, stdio: ['ignore', 'pipe', 'pipe']})
  let screen = ''
  child.stdout.on('data', (d: Buffer) => (screen += d.toString()))
  child.stderr.on('data', (d: Buffer) => (screen += d.toString()))
  if (onScreen) {
    const poll = setInterval(() => {
      fs.readFile(pidFile, 'utf8').then(
        (t) => {
          if (!t.trim() || !screen.includes(when ?? HIDE_CURSOR)) return
          clearInterval(poll)
          onScreen(Number(t.trim()))
        },
        () => {},
      )
    }, 50)
    child.on('close', () => clearInterval(poll))
  }
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({code, signal, screen}))
  })
}

/** The cursor was hidden at some point and shown again after the last time it was hidden. */
function cursorRestored(screen: string): boolean {
  const hidden = screen.lastIndexOf(HIDE_CURSOR)
  return hidden >= 0 && screen.lastIndexOf(SHOW_CURSOR) > hidden
}

describe('phase spinner on a terminal (push, fullsync)', function () {
  this.timeout(120_000)
  let dir: string
  let disk: string
  let replica: string

  beforeEach(async () => {
    dir = await tempDir()
    disk = path.join(dir, 'vm.img')
    replica = path.join(dir, 'replica', 'vm.img')
    await fs.mkdir(path.dirname(replica))
    await makeMixedDisk(disk, 16 * MiB, 'tty')
    assert.equal((await vdrep(['init', disk, '--to', replica])).code, 0)
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('push draws its phases on a TTY (connecting, sending N blocks) and shows the cursor again', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await markChanged(disk, await scribbleBlocks(disk, BS, 6, 'tty1'))
    // 384 KiB at 256 KiB/s: the send phase lasts long enough for the spinner to draw it.
    const r = await onTty(['push', disk, '--bwlimit', '256K'], dir)
    assert.equal(r.code, 0, r.screen)
    assert.match(r.screen, SPINNER_FRAME)
    assert.ok(r.screen.includes('connecting to the replica host'), r.screen)
    assert.ok(r.screen.includes('sending 6 blocks'), r.screen)
    assert.match(r.screen, /sequence 1 committed, 6 blocks/)
    assert.ok(cursorRestored(r.screen), JSON.stringify(r.screen.slice(-200)))
  })

  it('push and fullsync without a TTY: one summary line, no spinner, no escape codes', async () => {
    const f = await vdrep(['fullsync', disk])
    assert.equal(f.code, 0, f.stderr)
    await markChanged(disk, await scribbleBlocks(disk, BS, 3, 'tty2'))
    const p = await vdrep(['push', disk, '--bwlimit', '256K'])
    assert.equal(p.code, 0, p.stderr)
    for (const r of [f, p]) {
      assert.equal(r.stdout.trim().split('\n').length, 1, r.stdout)
      assert.equal(r.stderr, '')
      assert.doesNotMatch(r.stdout, SPINNER_FRAME)
      assert.ok(!r.stdout.includes('\u001B['), JSON.stringify(r.stdout))
      assert.ok(!r.stdout.includes('connecting to'), r.stdout)
    }
  })

  it('--json and --quiet on a TTY draw nothing', async () => {
    const j = await onTty(['fullsync', disk, '--json'], dir)
    assert.equal(j.code, 0, j.screen)
    assert.doesNotMatch(j.screen, SPINNER_FRAME)
    assert.ok(!j.screen.includes(HIDE_CURSOR))
    const q = await onTty(['fullsync', disk, '--quiet'], dir)
    assert.equal(q.code, 0, q.screen)
    assert.equal(q.screen, '')
  })

  it('a push that fails after the spinner started shows the cursor again and prints the error', async () => {
    assert.equal((await vdrep(['fullsync', disk])).code, 0)
    await markChanged(disk, await scribbleBlocks(disk, BS, 2, 'tty3'))
    const r = await onTty(['push', disk, '--pre-hook', 'exit 3'], dir)
    assert.notEqual(r.code, 0, r.screen)
    assert.ok(r.screen.includes('connecting to the replica host'), r.screen)
    assert.match(r.screen, /vdrep: error:/)
    assert.ok(cursorRestored(r.screen), JSON.stringify(r.screen.slice(-200)))
  })

  it('SIGINT while the transfer bar is drawn ends the full sync and shows the cursor again', async () => {
    let sent = false
    // The bar (cli-progress) hides the cursor and has no signal handler of its own.
    const r = await onTty(['fullsync', disk, '--bwlimit', '1M'], dir, 'compare [', (pid) => {
      sent = true
      process.kill(pid, 'SIGINT')
    })
    assert.ok(sent, `the command ended before SIGINT was sent: ${r.screen}`)
    assert.notEqual(r.code, 0, 'the full sync did not stop on SIGINT')
    assert.doesNotMatch(r.screen, /proved/, 'it ran to the end')
    assert.ok(cursorRestored(r.screen), JSON.stringify(r.screen.slice(-200)))
  })
})
