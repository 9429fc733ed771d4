#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The single `vdrep` entry. It runs the esbuild bundle (dist/bundle/, see scripts/bundle.mjs):
// oclif and each command load from a few files instead of ~300, and `execute` comes from the
// bundle so that oclif here is the same copy the bundled commands extend.
//
// The shebang drops NODE_EXTRA_CA_CERTS: Node 20 reads and parses that certificate file at
// every start, before any of this runs (~0.1 s for Debian's ca-certificates bundle; a third of
// a seed sync's wall time here), and vdrep makes no TLS connection (SSH is not TLS). `env -S`
// is GNU coreutils 8.30+ (Debian 10+); elsewhere run `node bin/run.js`.
import fs from 'node:fs'
import {fileURLToPath} from 'node:url'
import v8 from 'node:v8'
import {needsPlugins} from './cli-plugins.js'
import {optimizeDelay} from './optimize-delay.js'

// V8's young generation starts at 1 MiB per semi-space and doubles as a run allocates, up to
// 16 MiB each (three such spaces): a full sync's short-lived frames and views grew it to ~45
// MiB of heap for no gain, which kept a 64 GiB full sync above the 160 MiB budget (issue 21).
// A growth factor of 1 keeps it at its start size. Set here, not as --max-semi-space-size,
// because cron and a daemonized serve start `node bin/run.js` without the shebang's flags; V8
// reads this flag each time it would grow the space. Measured, 64 GiB fresh local full sync:
// peak RSS 215-230 -> 176-177 MiB; its time within the run-to-run noise of a loaded host.
v8.setFlagsFromString('--semi-space-growth-factor=1')

// V8's optimizing compiler (TurboFan) compiles the hot functions of a run on background
// threads. A typical vdrep run (a push, a full sync against a seed) lasts well under a second,
// and that compiling took ~0.4 s of CPU of it: on a 2-core host, time taken from the reads and
// checksums themselves (a 1 GiB seed sync: 0.52 s -> 0.38 s engine time with it off). So it
// is off for the first moments of a run and on after that: short runs never pay for it, long
// runs (a big disk) lose at most that long of optimized code. Measured on
// the bench's 1 GiB disk: the seed sync over SSH 0.99 -> 0.57 s engine; fresh syncs no slower.
// bin/optimize-delay.js decides how long (VDREP_OPTIMIZE_AFTER_MS, and who is exempt).
const OPTIMIZE_AFTER_MS = optimizeDelay(process.argv.slice(2), process.env, process.execArgv)
if (OPTIMIZE_AFTER_MS > 0) {
  v8.setFlagsFromString('--no-opt')
  setTimeout(() => v8.setFlagsFromString('--opt'), OPTIMIZE_AFTER_MS).unref()
}

// The plugins (help, not-found, autocomplete) load only when the command line needs them
// (bin/cli-plugins.js): a push from cron starts as fast as without them.
// Commands are <id>.js; a topic's commands (`vdrep test start`) sit in a folder of its name.
const commandIds = new Set(
  fs
    .readdirSync(new URL('../dist/bundle/commands/', import.meta.url), {withFileTypes: true})
    .filter((e) => e.isDirectory() || e.name.endsWith('.js'))
    .map((e) => (e.isDirectory() ? e.name : e.name.slice(0, -3))),
)
const pjson = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
if (!needsPlugins(process.argv.slice(2), commandIds)) pjson.oclif = {...pjson.oclif, plugins: []}

const {execute} = await import('../dist/bundle/cli/oclif.js')
await execute({dir: import.meta.url, loadOptions: {root: fileURLToPath(new URL('..', import.meta.url)), pjson}})
