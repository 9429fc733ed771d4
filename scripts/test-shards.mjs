#!/usr/bin/env node
// `npm test`: the compiled test files split between two mocha processes run at once (shards).
//
// Why: the suite mostly waits (sshd, guest boots, fsync, timeouts it must wait out), so one
// mocha process kept about one of CI's two cores busy. Two shards keep both busy.
//
// The split: files are dealt longest first, each to the shard with the least time so far, by
// the per-file times in scripts/test-times.json (a file not listed there counts as 1 s). The
// split is deterministic: the same files and times always make the same shards. Each run writes
// the times it measured to dist/test-times.json; copy that over scripts/test-times.json when the
// shards drift apart (the summary prints each shard's time).
//
// Output: each shard's whole output is printed when it ends (never interleaved), under a line
// with its exit status and time; while they run, a line a minute says how far each has got, and
// dist/test-shards/shard-N.log has each shard's output so far.
// Both shards run to their end even when one fails, so every failure is reported; the exit
// code is the first failed shard's (1 if it died of a signal), 0 when all passed.
//
// Test files may run at the same time as any other: see test/helpers/ports.ts (ports),
// test/helpers/users.ts (system users). VDREP_TEST_SHARDS=1 runs them all in one process.
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {createRequire} from 'node:module'
import {fileURLToPath} from 'node:url'

// The project is the working folder (npm runs scripts there); mocha and the reporter are this
// script's own.
const root = process.cwd()
const here = path.dirname(fileURLToPath(import.meta.url))
const mocha = path.join(path.dirname(createRequire(import.meta.url).resolve('mocha/package.json')), 'bin', 'mocha.js')
const reporter = path.join(here, 'mocha-file-times.cjs')
const shards = Math.max(1, Number(process.env.VDREP_TEST_SHARDS ?? 2) || 2)
const outDir = path.join(root, 'dist', 'test-shards')
const UNKNOWN_S = 1
// Files whose assertions measure the machine (a compression policy that weighs CPU against the
// link, millisecond round trips): run alone once the shards are done, so the other shard's load
// never decides them (both failed once beside it on a loaded host).
const ALONE = new Set(['test/integration/wan-compress.test.ts', 'test/integration/delay-relay.test.ts'])

/** dist/test/a/b.test.js -> test/a/b.test.ts, the key in test-times.json. */
const sourceOf = (file) => path.relative(path.join(root, 'dist'), file).replace(/\.js$/, '.ts')

function testFiles() {
  const dir = path.join(root, 'dist', 'test')
  return fs
    .readdirSync(dir, {recursive: true})
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => path.join(dir, f))
    .sort()
}

function readTimes() {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'scripts', 'test-times.json'), 'utf8'))
  } catch {
    return {}
  }
}

/** Longest first, each to the least-loaded shard (ties: the lower shard, then file name). */
function split(files, times, n) {
  const weight = (f) => times[sourceOf(f)] ?? UNKNOWN_S
  const order = [...files].sort((a, b) => weight(b) - weight(a) || a.localeCompare(b))
  const out = Array.from({length: n}, () => ({files: [], seconds: 0}))
  for (const f of order) {
    const least = out.reduce((m, s) => (s.seconds < m.seconds ? s : m))
    least.files.push(f)
    least.seconds += weight(f)
  }
  return out
}

function runShard(i, files, mocharc) {
  // The shard's own config: the project's, with its files as the spec and the timing reporter.
  const config = path.join(outDir, `shard-${i + 1}.json`)
  const timesFile = path.join(outDir, `times-${i + 1}.json`)
  fs.writeFileSync(config, JSON.stringify({...mocharc, spec: files, reporter}))
  const env = {...process.env, VDREP_TEST_SHARD: String(i + 1), VDREP_TEST_TIMES: timesFile}
  return new Promise((resolve) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [mocha, '--config', config], {cwd: root, env, stdio: ['ignore', 'pipe', 'pipe']})
    const shard = {i, out: [], passed: 0, failed: 0}
    const count = (d) => {
      const text = d.toString()
      shard.passed += (text.match(/✔/g) ?? []).length
      shard.failed += (text.match(/^ {4,}\d+\) /gm) ?? []).length // inline marks, not the summary
    }
    // Also as it comes, in a file: `tail -f dist/test-shards/shard-1.log` while the shards run.
    const log = fs.createWriteStream(path.join(outDir, `shard-${i + 1}.log`))
    const keep = (d) => (shard.out.push(d), log.write(d))
    child.stdout.on('data', (d) => (keep(d), count(d)))
    child.stderr.on('data', keep)
    child.on('error', (err) => shard.out.push(Buffer.from(`${err.message}\n`)))
    child.on('close', (code, signal) => {
      log.end()
      shard.rc = code ?? (signal ? 1 : 0)
      shard.status = shard.rc === 0 ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`
      shard.seconds = (performance.now() - t0) / 1000
      shard.timesFile = timesFile
      resolve(shard)
    })
    running.push(shard)
  })
}

const running = []
const files = testFiles()
if (files.length === 0) {
  console.error('test-shards: no dist/test/**/*.test.js: run the build first')
  process.exit(2)
}
const mocharc = JSON.parse(fs.readFileSync(path.join(root, '.mocharc.json'), 'utf8'))
fs.mkdirSync(outDir, {recursive: true})
const times = readTimes()
const alone = files.filter((f) => ALONE.has(sourceOf(f)))
const plan = split(
  files.filter((f) => !ALONE.has(sourceOf(f))),
  times,
  shards,
).filter((s) => s.files.length > 0)
const started = performance.now()
for (const [i, s] of plan.entries()) console.log(`> shard ${i + 1}: ${s.files.length} files, ~${Math.round(s.seconds)} s by the last times`)
if (alone.length > 0) console.log(`> shard ${plan.length + 1}: ${alone.length} files, alone once the others are done`)
const progress = setInterval(() => {
  const m = Math.round((performance.now() - started) / 60_000)
  console.log(
    `> ${m} min: ${running.map((s) => `shard ${s.i + 1} ${s.rc === undefined ? 'running' : 'done'}, ${s.passed} passed, ${s.failed} failed`).join('; ')}`,
  )
}, 60_000)
progress.unref()

const results = await Promise.all(plan.map((s, i) => runShard(i, s.files, mocharc)))
if (alone.length > 0) {
  plan.push({files: alone, seconds: 0})
  results.push(await runShard(plan.length - 1, alone, mocharc))
}
clearInterval(progress)
for (const r of results) {
  process.stdout.write(`\n> shard ${r.i + 1}: ${r.status} in ${r.seconds.toFixed(1)} s\n`)
  process.stdout.write(Buffer.concat(r.out))
}

// The times this run measured, for the next split (see the top of this file).
const measured = {}
for (const r of results) {
  try {
    Object.assign(measured, JSON.parse(fs.readFileSync(r.timesFile, 'utf8')))
  } catch {
    // a shard that died early wrote none
  }
}
const sorted = Object.fromEntries(Object.entries(measured).sort(([a], [b]) => a.localeCompare(b)))
fs.writeFileSync(path.join(root, 'dist', 'test-times.json'), JSON.stringify(sorted, null, 1) + '\n')

console.log('')
for (const r of results) console.log(`> shard ${r.i + 1}: ${r.status} in ${r.seconds.toFixed(1)} s (${plan[r.i].files.length} files)`)
// Mocha's own counts, summed over the shards: the one line to compare with a one-process run.
const lastCount = (text, word) => Number([...text.matchAll(new RegExp(`^  (\\d+) ${word}`, 'gm'))].at(-1)?.[1] ?? 0)
const total = (word) => results.reduce((n, r) => n + lastCount(Buffer.concat(r.out).toString(), word), 0)
const counts = ['passing', 'failing', 'pending'].map((w) => `${total(w)} ${w}`).join(', ')
console.log(`> ${results.length} shards: ${counts}; ${((performance.now() - started) / 1000).toFixed(1)} s in all`)
process.exitCode = results.find((r) => r.rc !== 0)?.rc ?? 0
