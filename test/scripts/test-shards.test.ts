// scripts/test-shards.mjs, which `npm test` runs: the test files split between two mocha
// processes by the last per-file times, really run at the same time, every failure of every
// shard reported (the run fails when either shard does), each shard's output printed whole, and
// the times measured written for the next split. Run against a throwaway project of plain
// mocha test files.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {PROJECT_ROOT} from '../helpers/cli.js'
import {tempDir} from '../helpers/disks.js'

const execFileP = promisify(execFile)
const TEST_SHARDS = path.join(PROJECT_ROOT, 'scripts', 'test-shards.mjs')

// `waits` passes only once `flag` has run: in one process, one after the other, it would fail.
const FILES: Record<string, string> = {
  'waits.test.js': `describe('waits', () => { it('saw the flag made by the other shard', async () => {
    for (let i = 0; i < 100; i++) { if (require('fs').existsSync('flag.txt')) return; await new Promise((r) => setTimeout(r, 50)) }
    throw new Error('no flag: the shards did not run at once')
  }) })`,
  'flag.test.js': `describe('flag', () => { it('makes the flag', async () => {
    await new Promise((r) => setTimeout(r, 300)); require('fs').writeFileSync('flag.txt', '')
  }) })`,
  'fails-a.test.js': `describe('fails-a', () => { it('fails in its shard', () => { throw new Error('boom-a') }) })`,
  'fails-b.test.js': `describe('fails-b', () => { it('fails in its shard', () => { throw new Error('boom-b') }) })`,
}
// Longest first to the least-loaded shard: 1 = waits, fails-b; 2 = flag, fails-a.
const TIMES = {'test/waits.test.ts': 10, 'test/flag.test.ts': 9, 'test/fails-a.test.ts': 1, 'test/fails-b.test.ts': 1}

async function run(dir: string): Promise<{code: number; out: string}> {
  try {
    const r = await execFileP(process.execPath, [TEST_SHARDS], {cwd: dir, env: {...process.env, VDREP_TEST_SHARDS: '2'}})
    return {code: 0, out: r.stdout + r.stderr}
  } catch (err) {
    const e = err as {code: number; stdout: string; stderr: string}
    return {code: e.code, out: e.stdout + e.stderr}
  }
}

/** The block a shard's output was printed in: from its header to the next one. */
function block(out: string, shard: number): string {
  const from = out.search(new RegExp(`\\n> shard ${shard}: (ok|FAILED)`))
  assert.ok(from >= 0, out)
  const next = out.slice(from + 1).search(/\n> shard \d: (ok|FAILED)/)
  return next < 0 ? out.slice(from) : out.slice(from, from + 1 + next)
}

describe('scripts/test-shards.mjs (npm test: two mocha processes at once)', function () {
  this.timeout(60_000)
  let dir: string

  beforeEach(async () => {
    dir = await tempDir('vdrep-test-shards-')
    await fs.mkdir(path.join(dir, 'dist', 'test'), {recursive: true})
    await fs.mkdir(path.join(dir, 'scripts'))
    for (const [name, text] of Object.entries(FILES)) await fs.writeFile(path.join(dir, 'dist', 'test', name), text)
    await fs.writeFile(path.join(dir, 'scripts', 'test-times.json'), JSON.stringify(TIMES))
    await fs.writeFile(path.join(dir, '.mocharc.json'), JSON.stringify({spec: ['dist/test/**/*.test.js'], timeout: 20_000, exit: true}))
  })
  afterEach(async () => {
    await fs.rm(dir, {recursive: true, force: true})
  })

  it("splits by the last times, runs the shards at once, and reports both shards' failures", async () => {
    const r = await run(dir)
    assert.equal(r.code, 1, r.out)
    assert.match(r.out, /> shard 1: 2 files, ~11 s/)
    assert.match(r.out, /> shard 2: 2 files, ~10 s/)
    const one = block(r.out, 1)
    const two = block(r.out, 2)
    // Each shard's output whole, in its own block: its files' tests and its failure, no other.
    assert.match(one, /saw the flag made by the other shard/, 'the shards ran at the same time')
    assert.match(one, /boom-b/)
    assert.doesNotMatch(one, /makes the flag|boom-a/)
    assert.match(two, /makes the flag/)
    assert.match(two, /boom-a/)
    assert.doesNotMatch(two, /saw the flag|boom-b/)
    assert.match(r.out, /> shard 1: FAILED \(exit 1\) in [\d.]+ s \(2 files\)\n> shard 2: FAILED \(exit 1\) in [\d.]+ s \(2 files\)\n> 2 shards:/)
    // The times this run measured, keyed as test-times.json is, for the next split.
    const measured = JSON.parse(await fs.readFile(path.join(dir, 'dist', 'test-times.json'), 'utf8')) as Record<string, number>
    assert.deepEqual(Object.keys(measured).sort(), Object.keys(TIMES).sort())
    assert.ok(measured['test/flag.test.ts']! >= 0.3, JSON.stringify(measured))
  })

  it('exits 0 when every shard passes; a file the times do not list still runs', async () => {
    await fs.rm(path.join(dir, 'dist', 'test', 'fails-a.test.js'))
    await fs.rm(path.join(dir, 'dist', 'test', 'fails-b.test.js'))
    await fs.writeFile(path.join(dir, 'dist', 'test', 'new.test.js'), `describe('new', () => { it('is a new file', () => {}) })`)
    const r = await run(dir)
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /is a new file/)
    assert.match(r.out, /> shard 1: ok in .*\n> shard 2: ok in /)
  })
})
