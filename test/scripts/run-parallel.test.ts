// scripts/run-parallel.mjs, which npm test's pretest runs ESLint, Prettier's check and the build
// with: the scripts really run at the same time, a failing one fails the whole (even when the
// others pass, and whichever ends first), every one runs to its end, and each one's output is
// printed whole. Run against a throwaway package whose scripts are shell one-liners.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {PROJECT_ROOT} from '../helpers/cli.js'
import {tempDir} from '../helpers/disks.js'

const execFileP = promisify(execFile)
const RUN_PARALLEL = path.join(PROJECT_ROOT, 'scripts', 'run-parallel.mjs')

async function runIn(dir: string, names: string[]): Promise<{code: number; out: string}> {
  try {
    const r = await execFileP(process.execPath, [RUN_PARALLEL, ...names], {cwd: dir})
    return {code: 0, out: r.stdout + r.stderr}
  } catch (err) {
    const e = err as {code: number; stdout: string; stderr: string}
    return {code: e.code, out: e.stdout + e.stderr}
  }
}

describe('scripts/run-parallel.mjs (pretest: lint and build at once)', function () {
  this.timeout(60_000)
  let dir: string

  before(async () => {
    dir = await tempDir('vdrep-run-parallel-')
    // `waits` ends only once `flag` has run: one after the other (waits first), it would give up.
    const scripts = {
      waits: 'for i in $(seq 200); do [ -e flag.txt ] && echo waits-saw-the-flag && exit 0; sleep 0.05; done; echo gave-up; exit 9',
      flag: 'sleep 0.2 && touch flag.txt && echo flag-made',
      fails: 'echo fails-line-1 && echo fails-line-2 >&2 && exit 3',
      slow: 'sleep 1 && echo slow-finished',
    }
    await fs.writeFile(path.join(dir, 'package.json'), JSON.stringify({name: 'run-parallel-probe', version: '1.0.0', scripts}))
  })
  after(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('runs the scripts at the same time and exits 0 when all pass', async () => {
    await fs.rm(path.join(dir, 'flag.txt'), {force: true})
    const r = await runIn(dir, ['waits', 'flag'])
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /waits-saw-the-flag/)
    assert.match(r.out, /> waits: ok in/)
    assert.match(r.out, /> flag: ok in/)
  })

  it('a failing script fails the run, after the others ran to their end; its output is whole', async () => {
    const r = await runIn(dir, ['fails', 'slow'])
    assert.notEqual(r.code, 0, r.out)
    assert.match(r.out, /> fails: FAILED \(exit 3\)/)
    assert.match(r.out, /slow-finished/, 'the other script was not cut short')
    // The failing script's block: its header, then its own lines, before the next header.
    const from = r.out.indexOf('> fails:')
    const rest = r.out.slice(from + 1)
    // (npm's own "> package@version script" lines sit inside a block: a header has a status.)
    const next = rest.search(/\n> [\w:-]+: (ok|FAILED)/)
    const block = r.out.slice(from, next < 0 ? undefined : from + 1 + next)
    assert.match(block, /fails-line-1/)
    assert.match(block, /fails-line-2/)
  })

  it('a missing script fails the run', async () => {
    const r = await runIn(dir, ['slow', 'no-such-script'])
    assert.notEqual(r.code, 0, r.out)
    assert.match(r.out, /> no-such-script: FAILED/)
  })
})
