#!/usr/bin/env node
// Builds the power-cut recorder (native/recorder/*.c -> build/powercut/vdrep_recorder.so),
// an LD_PRELOAD shim used only by the power-cut tests and `npm run powercut` (issue 22); vdrep
// itself never loads it. Rebuilt when the source is newer than the library. Prints the path; exits
// 1 when there is no C compiler (the tests that need it then skip and say why).
'use strict'

const {spawnSync} = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const dir = path.join(root, 'native', 'recorder')
const sources = ['log.c', 'files.c', 'names.c'].map((f) => path.join(dir, f))
const out = path.join(root, 'build', 'powercut', 'vdrep_recorder.so')

function mtime(p) {
  try {
    return fs.statSync(p).mtimeMs
  } catch {
    return -1
  }
}

if (sources.concat(path.join(dir, 'recorder.h')).some((f) => mtime(out) < mtime(f))) {
  fs.mkdirSync(path.dirname(out), {recursive: true})
  const cc = process.env.CC || 'cc'
  // Built under a name of its own, then renamed: two test processes may build it at once, and
  // neither may LD_PRELOAD a half-written library.
  const tmp = `${out}.${process.pid}.tmp`
  const r = spawnSync(cc, ['-std=gnu11', '-Wall', '-Wextra', '-O1', '-shared', '-fPIC', '-o', tmp, ...sources, '-ldl', '-lpthread'], {encoding: 'utf8'})
  if (r.status === 0) fs.renameSync(tmp, out)
  else fs.rmSync(tmp, {force: true})
  if (r.status !== 0) {
    process.stderr.write(`vdrep: power-cut recorder not built (${r.error ? r.error.message : r.stderr.trim()})\n`)
    process.exit(1)
  }
}
process.stdout.write(`${out}\n`)
