#!/usr/bin/env node
// Runs npm scripts at the same time: `node scripts/run-parallel.mjs lint:eslint lint:prettier
// build`. npm test's pretest runs ESLint, Prettier's check and the build this way.
//
// Why: the three are single-threaded and independent (none reads what another writes: ESLint
// and Prettier read src/ test/ bench/, the build writes dist/ and oclif.manifest.json), and run
// one after another they left one of the two CI cores idle for the whole pretest.
//
// Each script's output is kept and printed whole when it ends (never interleaved), under a
// line with its name, exit status and time. Every script runs to its end even when another
// fails, so one run shows every lint error and type error; the exit code is the first failed
// script's (1 if it died of a signal), 0 when all passed.
import {spawn} from 'node:child_process'

const names = process.argv.slice(2)
if (names.length === 0) {
  console.error('usage: node scripts/run-parallel.mjs SCRIPT...')
  process.exit(2)
}
const npm = process.env.npm_execpath
// Under npm, npm_execpath is npm's own CLI (run it with this node); from a shell, `npm`.
const command = npm ? [process.execPath, npm] : ['npm']

const started = performance.now()
const runs = names.map(
  (name) =>
    new Promise((resolve) => {
      const t0 = performance.now()
      const child = spawn(command[0], [...command.slice(1), 'run', name], {stdio: ['ignore', 'pipe', 'pipe']})
      const out = []
      child.stdout.on('data', (d) => out.push(d))
      child.stderr.on('data', (d) => out.push(d))
      child.on('error', (err) => out.push(Buffer.from(`${err.message}\n`)))
      child.on('close', (code, signal) => {
        const rc = code ?? (signal ? 1 : 0)
        const secs = ((performance.now() - t0) / 1000).toFixed(1)
        process.stdout.write(`> ${name}: ${rc === 0 ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`} in ${secs} s\n`)
        process.stdout.write(Buffer.concat(out))
        resolve(rc)
      })
    }),
)
const codes = await Promise.all(runs)
console.log(`> ${names.join(', ')}: ${((performance.now() - started) / 1000).toFixed(1)} s in all`)
process.exitCode = codes.find((c) => c !== 0) ?? 0
