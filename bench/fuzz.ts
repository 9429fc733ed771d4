// Fuzz every binary decoder in the core: `npm run fuzz [-- --runs N] [-- --seed S]`.
// Prints per decoder the cases tried, how many it accepted (the rest it refused with a
// VdrepError) and the failures, then a total; exits non-zero on any failure.
import {MAX_FAILURES} from './fuzz-harness.js'
import {FUZZ_TARGETS} from './fuzz-properties.js'

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return fallback
  const v = Number(process.argv[i + 1])
  if (!Number.isSafeInteger(v) || (name === 'runs' && v < 1)) {
    process.stderr.write(`fuzz: --${name} needs a whole number (--runs at least 1), not '${process.argv[i + 1] ?? ''}'\n`)
    process.exit(2)
  }
  return v
}

const runs = option('runs', 10000)
const seed = option('seed', (Date.now() ^ (Math.random() * 0x7fffffff)) | 0)
const width = Math.max(...FUZZ_TARGETS.map((t) => t.name.length))

process.stdout.write(`fuzzing ${FUZZ_TARGETS.length} decoders, ${runs} cases each, seed ${seed}\n`)
let tried = 0
let failures = 0
const failed: string[] = []
for (const t of FUZZ_TARGETS) {
  const started = Date.now()
  const r = await t.run(runs, seed)
  tried += r.tried
  failures += r.failures
  if (r.firstFailure) failed.push(`${r.name}: ${r.firstFailure}`)
  const stopped = r.failures >= MAX_FAILURES ? ` (stopped after ${MAX_FAILURES} failures)` : ''
  process.stdout.write(
    `${r.name.padEnd(width)}  cases ${String(r.tried).padStart(7)}  accepted ${String(r.accepted).padStart(7)}  failures ${String(r.failures).padStart(5)}  ${Date.now() - started} ms${stopped}\n`,
  )
}
process.stdout.write(`${'total'.padEnd(width)}  cases ${String(tried).padStart(7)}  failures ${String(failures).padStart(5)}\n`)
for (const f of failed) process.stderr.write(`\nfirst failure of ${f}\n`)
process.exitCode = failures > 0 ? 1 : 0
