// The bench-length crash matrix (issue 6): `npx tsc -p . && node dist/bench/crash-matrix.js
// --points 20 [--seed N] [--kinds fullsync-client,push-receiver,...]`. Runs as root (it starts
// its own sshd). For each kind (kill -9 of the client, the receiver or the tracker, during a
// full sync or a push) it tries --points seeded kill points, recovers each with the normal
// commands and checks it (test/helpers/crash-matrix.ts), then prints the points tried and their
// outcomes per kind and a total line. Exits 1 on the first failing point of any kind (the other
// kinds still run), printing the seed to replay it.
import {CRASH_KINDS, CrashMatrix, crashSeed, formatReports, type CrashKind, type KindReport} from '../test/helpers/crash-matrix.js'

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? undefined : (process.argv[i + 1] ?? '')
}

function fail(message: string): never {
  process.stderr.write(`crash-matrix: ${message}\n`)
  process.exit(2)
}

const pointsArg = option('points') ?? '20'
const points = Number(pointsArg)
if (!Number.isSafeInteger(points) || points < 1) fail(`--points needs a whole number of at least 1, not '${pointsArg}'`)
let seed: number
try {
  seed = crashSeed(option('seed'))
} catch (err) {
  fail((err as Error).message)
}
const kinds = (option('kinds')?.split(',') ?? [...CRASH_KINDS]) as CrashKind[]
for (const k of kinds) if (!CRASH_KINDS.includes(k)) fail(`unknown kind '${k}' (kinds: ${CRASH_KINDS.join(', ')})`)
if (process.getuid?.() !== 0) fail('run as root: the matrix starts its own sshd')

process.stdout.write(`crash matrix: ${points} points per kind, ${kinds.length} kinds, seed ${seed} (replay: --seed ${seed})\n`)
const verbose = process.argv.includes('--verbose')
const matrix = await CrashMatrix.start({seed, log: verbose ? (l) => process.stdout.write(`${l}\n`) : undefined})
const reports: KindReport[] = []
const failures: string[] = []
try {
  for (const kind of kinds) {
    try {
      const r = await matrix.run(kind, points)
      reports.push(r)
      process.stdout.write(`${formatReports(seed, [r])[1]}\n`)
    } catch (err) {
      const msg = (err as Error).message
      failures.push(`${kind}: ${msg}`)
      process.stdout.write(`${kind}: FAILED: ${msg}\n`)
    }
  }
} finally {
  await matrix.stop()
}
const lines = formatReports(seed, reports, failures.length)
process.stdout.write(`\n${lines.join('\n')}\n`)
if (failures.length > 0) {
  process.stdout.write(
    `FAILED kinds: ${failures.length} (replay: node dist/bench/crash-matrix.js --seed ${seed} --points ${points} --kinds ${failures.map((f) => f.split(':')[0]).join(',')})\n`,
  )
  for (const f of failures) process.stderr.write(`\n${f}\n`)
}
process.exitCode = failures.length > 0 ? 1 : 0
