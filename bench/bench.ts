// `npm run bench`: the benchmark of issue 2 (and of the SSH and tracker work once it lands).
//
//   node dist/bench/bench.js [--size 1G] [--runs 3] [--only local,ssh,tracker] [--dir DIR] [--json] [--keep]
//
// Sections run in order: local (bench/local-bench.ts), then ssh and tracker when their
// modules exist. A section module exports `run<Name>Bench(opts: BenchOptions)` returning
// `BenchRow[]` (or `{rows, checks, context}`), and may export `<name>Checks(rows)` returning
// ratio checks shaped like `BenchCheck` in local-bench.ts: {label, ratio?, target, pass?,
// note?}, and `<name>Context(rows)` returning lines printed for context.
// Modules that are missing are reported as skipped, so this harness works before they land.
//
// Progress goes to stderr; tables to stdout; the last stdout line is one JSON summary
// (`--json`: nothing but that line). All runs are page-cache warm: the disk is read once
// before the first timed run, and no cache is dropped between runs (that cannot be done
// reliably without root, and a warm cache favours no case over another).
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {HOST_RECLAIMS_FREE_MEMORY, machineStealSeconds, mbps, type BenchOptions, type BenchRow} from './bench-common.js'
import {localChecks, localContext, runLocalBench, type BenchCheck, type LocalBenchRow} from './local-bench.js'
import {parseSize} from '../src/core/util/units.js'

const SECTIONS = ['local', 'ssh', 'tracker', 'push', 'login', 'latency', 'marks', 'points', 'export', 'failover', 'memory', 'wan'] as const
type SectionName = (typeof SECTIONS)[number]

interface SectionResult {
  section: SectionName
  rows: BenchRow[]
  checks: BenchCheck[]
  context: string[]
  skipped?: string
  seconds: number
  /** Share of the CPUs' time the hypervisor took (steal) while the section ran, where known. */
  steal?: number
}

const USAGE = `usage: node dist/bench/bench.js [--size 1G] [--runs 3] [--only local,ssh,tracker] [--dir DIR] [--json] [--keep]
  --size   size of the generated disk (default 1G)
  --runs   timed runs per case; the median is reported (default 3)
  --only   comma-separated sections to run (default all: ${SECTIONS.join(',')})
  --dir    where to make the work folder (default /var/tmp or /tmp, whichever has room)
  --json   print only the JSON summary line on stdout
  --keep   leave the work folder in place`

function parseCli(argv: string[]) {
  const {values} = parseArgs({
    args: argv,
    options: {
      size: {type: 'string', default: '1G'},
      runs: {type: 'string', default: '3'},
      only: {type: 'string', default: SECTIONS.join(',')},
      dir: {type: 'string'},
      json: {type: 'boolean', default: false},
      keep: {type: 'boolean', default: false},
      help: {type: 'boolean', short: 'h', default: false},
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const size = parseSize(values.size, '--size')
  if (size < 1 << 20) throw new Error(`--size ${values.size} is too small (at least 1M)`)
  const runs = Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs ${values.runs} is not a whole number between 1 and 50`)
  const only = values.only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section '${s}' (known: ${SECTIONS.join(', ')})`)
  return {size, runs, only: only as SectionName[], dir: values.dir, json: values.json, keep: values.keep}
}

/** The first of the candidates with room for about 6 disks (source, seed, replicas, scratch; sparse helps). */
async function pickBaseDir(size: number, given?: string): Promise<string> {
  const need = 6 * size
  const candidates = given ? [path.resolve(given)] : ['/var/tmp', os.tmpdir()]
  for (const dir of candidates) {
    try {
      const st = await fs.statfs(dir)
      if (given || st.bavail * st.bsize >= need) return dir
    } catch {
      if (given) throw new Error(`--dir ${given} does not exist`)
    }
  }
  throw new Error(`no room for a ${(need / 2 ** 30).toFixed(1)} GiB work folder in ${candidates.join(' or ')}; pass --dir or a smaller --size`)
}

function fmt(n: number | undefined, digits: number): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits)
}

function table(rows: BenchRow[]): string {
  const head = ['case', 'median s', 'MB/s', 'engine s', 'runs (s)', 'note']
  const body = rows.map((r) => {
    const lr = r as LocalBenchRow
    return [
      r.name,
      fmt(r.seconds, 2),
      r.bytes > 0 && Number.isFinite(r.seconds) ? fmt(mbps(r), 0) : '-',
      fmt(lr.engineSeconds, 2),
      r.runs.length ? r.runs.map((x) => x.toFixed(2)).join(' ') : '-',
      r.note ?? '',
    ]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const numeric = [false, true, true, true, false, false]
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n')
}

function checkLine(c: BenchCheck): string {
  const verdict = c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : 'MISS'
  const ratio = c.ratio === undefined ? '-' : `${c.ratio.toFixed(2)}x`
  return `  ${verdict}  ${c.label}: ${ratio} (target ${c.target})${c.note ? ` — ${c.note}` : ''}`
}

type SectionModule = Record<string, unknown>

/** Import an optional section module; undefined when it is not there (yet). */
async function optionalModule(file: string): Promise<SectionModule | undefined> {
  try {
    return (await import(file)) as SectionModule
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(file.replace('./', ''))) return undefined
    throw err
  }
}

async function runSection(name: SectionName, opts: BenchOptions, log: (l: string) => void): Promise<SectionResult> {
  const started = performance.now()
  const stolen = machineStealSeconds()
  const done = (r: Omit<SectionResult, 'seconds' | 'section'>): SectionResult => {
    const seconds = (performance.now() - started) / 1000
    const now = machineStealSeconds()
    const steal = stolen === undefined || now === undefined ? undefined : (now - stolen) / (seconds * os.cpus().length)
    return {section: name, ...r, seconds, steal}
  }
  const sectionOpts = {...opts, workDir: path.join(opts.workDir, name), log}
  await fs.mkdir(sectionOpts.workDir, {recursive: true})
  if (name === 'local') {
    const rows = await runLocalBench(sectionOpts)
    return done({rows, checks: localChecks(rows), context: localContext(rows)})
  }
  const mod = await optionalModule(`./${name}-bench.js`)
  const runName = `run${name[0].toUpperCase()}${name.slice(1)}Bench`
  const run = mod?.[runName]
  if (typeof run !== 'function') return done({rows: [], checks: [], context: [], skipped: `bench/${name}-bench.ts (${runName}) is not there yet`})
  const out = (await (run as (o: BenchOptions) => Promise<unknown>)(sectionOpts)) as BenchRow[] | {rows: BenchRow[]; checks?: BenchCheck[]; context?: string[]}
  const rows = Array.isArray(out) ? out : out.rows
  let checks = Array.isArray(out) ? [] : (out.checks ?? [])
  const checksFn = mod?.[`${name}Checks`]
  if (checks.length === 0 && typeof checksFn === 'function') checks = (checksFn as (r: BenchRow[]) => BenchCheck[])(rows)
  let context = Array.isArray(out) ? [] : (out.context ?? [])
  const contextFn = mod?.[`${name}Context`]
  if (context.length === 0 && typeof contextFn === 'function') context = (contextFn as (r: BenchRow[]) => string[])(rows)
  return done({rows, checks, context})
}

function printSection(r: SectionResult, size: number, runs: number): void {
  const w = (s = '') => process.stdout.write(`${s}\n`)
  w()
  if (r.skipped) {
    w(`== ${r.section}: skipped (${r.skipped})`)
    return
  }
  const header =
    r.section === 'local'
      ? `== local: one ${(size / 2 ** 20).toFixed(0)} MiB mixed disk (random, zero/hole and text regions), 64 KiB blocks, median of ${runs} run(s), page cache warm`
      : `== ${r.section}: median of ${runs} run(s), page cache warm`
  w(header)
  w(table(r.rows))
  if (r.context.length) {
    w('context:')
    for (const c of r.context) w(`  ${c}`)
  }
  if (r.checks.length) {
    w('targets (median wall times):')
    for (const c of r.checks) w(checkLine(c))
  }
  const steal =
    r.steal === undefined
      ? ''
      : `; the hypervisor took ${(r.steal * 100).toFixed(0)}% of the CPUs' time (steal)${r.steal > 0.1 ? ': a noisy host, compare ratios from one run only' : ''}`
  w(`(${r.section} section took ${r.seconds.toFixed(0)} s${steal})`)
}

async function main(): Promise<number> {
  let cli: ReturnType<typeof parseCli>
  try {
    cli = parseCli(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}\n`)
    return 2
  }
  const base = await pickBaseDir(cli.size, cli.dir)
  const workDir = await fs.mkdtemp(path.join(base, 'vdrep-bench-'))
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`)
  const cleanup = async () => {
    if (!cli.keep) await fs.rm(workDir, {recursive: true, force: true})
  }
  const onSignal = (sig: NodeJS.Signals) => {
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  log(`work folder ${workDir}${cli.keep ? ' (kept)' : ''}; ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`)

  const opts: BenchOptions = {size: cli.size, runs: cli.runs, workDir}
  const results: SectionResult[] = []
  let failed = false
  try {
    for (const name of cli.only) {
      try {
        const r = await runSection(name, opts, log)
        results.push(r)
        if (!cli.json) printSection(r, cli.size, cli.runs)
      } catch (err) {
        failed = true
        log(`${name} section failed: ${(err as Error).stack ?? err}`)
        results.push({section: name, rows: [], checks: [], context: [], skipped: `failed: ${(err as Error).message.split('\n')[0]}`, seconds: 0})
      } finally {
        await fs.rm(path.join(workDir, name), {recursive: true, force: true}).catch(() => {})
      }
    }
  } finally {
    await cleanup()
  }
  if (!cli.json) {
    process.stdout.write('\nAll runs are page-cache warm (the cache is not dropped between runs); this favours no case over another.\n')
    if (HOST_RECLAIMS_FREE_MEMORY && process.env.VDREP_BENCH_SETTLE !== '0') {
      process.stdout.write(
        "This machine is a VM guest that hands free memory back to its host (free page reporting): before every timed run of the local and ssh sections the bench touches and frees enough memory for the run, so no case pays the host's page faults and every case runs on warm memory (VDREP_BENCH_SETTLE=0 turns this off).\n",
      )
    }
    process.stdout.write(
      "vdrep's wall time includes node + oclif start-up and the fdatasync of the replica that makes it durable; cp, rsync and qemu-img do not sync (qemu-img -t writeback does, once at the end).\n",
    )
  }
  const summary = {
    bench: 'vdrep',
    size: cli.size,
    runs: cli.runs,
    cpus: os.cpus().length,
    loadavg: Number(os.loadavg()[0].toFixed(2)),
    pageCache: 'warm',
    memorySettled: HOST_RECLAIMS_FREE_MEMORY && process.env.VDREP_BENCH_SETTLE !== '0',
    sections: Object.fromEntries(
      results.map((r) => [
        r.section,
        r.skipped
          ? {skipped: r.skipped}
          : {
              seconds: Number(r.seconds.toFixed(1)),
              steal: r.steal === undefined ? null : Number(r.steal.toFixed(3)),
              rows: r.rows.map((x) => ({
                ...x,
                mbps: x.bytes > 0 && Number.isFinite(x.seconds) ? Number(mbps(x).toFixed(1)) : null,
                seconds: Number.isFinite(x.seconds) ? x.seconds : null,
              })),
              checks: r.checks,
            },
      ]),
    ),
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  return failed ? 1 : 0
}

process.exitCode = await main()
