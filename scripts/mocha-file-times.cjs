// Mocha's spec reporter, plus each test file's wall time (its top-level suites, hooks included)
// written as {"test/x.test.ts": seconds} to $VDREP_TEST_TIMES when the run ends.
// scripts/test-shards.mjs splits the next run's files between its shards by these times.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const {Spec} = require('mocha/lib/reporters/index.cjs')

class FileTimes extends Spec {
  constructor(runner, options) {
    super(runner, options)
    const started = new Map()
    const times = {}
    runner.on('suite', (suite) => {
      if (suite.parent?.root && suite.file) started.set(suite, performance.now())
    })
    runner.on('suite end', (suite) => {
      const t0 = started.get(suite)
      if (t0 === undefined) return
      // dist/test/a.test.js -> test/a.test.ts: the source's name, as test-times.json keys it.
      const key = path.relative(path.join(process.cwd(), 'dist'), suite.file).replace(/\.js$/, '.ts')
      times[key] = Math.round(((times[key] ?? 0) + (performance.now() - t0) / 1000) * 10) / 10
    })
    runner.once('end', () => {
      const out = process.env.VDREP_TEST_TIMES
      if (out) fs.writeFileSync(out, JSON.stringify(times, null, 1) + '\n')
    })
  }
}

module.exports = FileTimes
