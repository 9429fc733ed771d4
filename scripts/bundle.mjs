// Bundles the compiled CLI (dist/src, from tsc) with esbuild into dist/bundle/, which is what
// bin/run.js runs. Run by `npm run build` after tsc and before the manifest step.
//
// Why: start-up was dominated by Node resolving, stat-ing, reading and compiling ~300 small
// files (@oclif/core and its dependencies, semver, our dist/src/**). One file per command plus
// shared chunks (esbuild code splitting) loads the same code from a handful of files, and each
// command still loads only its own code: `vdrep --version` and `vdrep status` never load the
// tracker or the receiver. (One bundle of every command behind oclif's "explicit" command
// discovery was measured too: slower than this for every command, since every run then
// parses every command.)
//
// Layout (every output is exactly one folder below dist/bundle/; src/core/locations.ts
// relies on it to find bin/run.js and the workers, and this script checks it):
//   dist/bundle/cli/oclif.js          @oclif/core's execute and Config (bin/run.js, manifest)
//   dist/bundle/commands/<id>.js      one per command; package.json oclif.commands points here
//   dist/bundle/chunks/*.js           code shared by the above (one copy of @oclif/core)
//   dist/bundle/workers/<name>.js     worker-thread entries, each self-contained
//
// dist/src/** stays as tsc wrote it: the tests import it directly, and it runs unbundled.
import * as esbuild from 'esbuild'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const outdir = path.join(root, 'dist', 'bundle')
const compiled = path.join(root, 'dist', 'src')

// Not bundled, loaded from node_modules at run time:
// - ssh2 loads its native crypto binding by a path relative to its own files
//   (require('./crypto/build/Release/sshcrypto.node'), and cpu-features likewise), which a
//   bundle would break (it would silently fall back to slower JS ciphers); only SSH targets
//   need it anyway.
// - zstd-napi (optional: compression on the wire) loads its .node relative to its own folder.
// - @napi-rs/blake-hash picks a platform-specific .node package at run time; xxhash-addon
//   finds its prebuilt .node (node-gyp-build) relative to its own folder.
// - *.node: native addons are never bundled (our own addon is found by native/binding.ts from the
//   package root).
// - typescript, ts-node, tsx, pnpapi: @oclif/core requires these only in development mode
//   (running .ts commands) or under Yarn PnP, inside try/catch; bundling typescript would add
//   9 MB.
const external = ['ssh2', 'cpu-features', '@napi-rs/blake-hash', 'xxhash-addon', 'zstd-napi', '*.node', 'typescript', 'ts-node', 'tsx', 'pnpapi']

// The bundle is ESM, but @oclif/core and several of its dependencies are CommonJS and call
// require() for Node built-ins (and, in @oclif/core's module loader, require.resolve for a
// command's file path). ESM has no `require`, so each output file gets one made for it.
// `__dirname`/`__filename` are deliberately not defined: inside a bundle they could only name
// the bundle's folder, not the package the code came from. The uses left in @oclif/core are
// in paths we never take (Config.load without a root, ts-node) or inside try/catch (its check
// of its own package.json's engines.node, which is then skipped; vdrep's own engines field
// says the same).
const banner = ["import {createRequire as __vdrepCreateRequire} from 'node:module';", 'const require = __vdrepCreateRequire(import.meta.url);'].join('\n')

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external,
  banner: {js: banner},
  // src/core/locations.ts: tells the bundled code it is bundled.
  define: {__VDREP_BUNDLED__: 'true'},
  // esbuild follows tsc's source maps, so `node --enable-source-maps` points into src/*.ts.
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  // Written below, file by file: the working tree is shared and a `vdrep` may be running
  // from dist/bundle/ while this builds.
  write: false,
}

const cli = {'cli/oclif': path.join(compiled, 'cli', 'oclif.js')}
/** Re-export files of topic commands (written with the bundle, outside its depth check). */
const stubs = []
for (const file of fs.readdirSync(path.join(compiled, 'commands'))) {
  if (file.endsWith('.js')) cli[`commands/${file.slice(0, -3)}`] = path.join(compiled, 'commands', file)
  // A topic's commands (src/commands/test/start.ts: `vdrep test start`) must be found by oclif
  // at commands/test/start.js, two folders down: the code goes to chunks/command-test-start.js
  // (one folder down, like all code) and commands/test/start.js is a one-line re-export of it.
  const topic = path.join(compiled, 'commands', file)
  if (fs.statSync(topic).isDirectory())
    for (const sub of fs.readdirSync(topic)) {
      if (!sub.endsWith('.js')) continue
      const name = sub.slice(0, -3)
      cli[`chunks/command-${file}-${name}`] = path.join(topic, sub)
      stubs.push({
        path: path.join(outdir, 'commands', file, sub),
        contents: Buffer.from(`export {default} from '../../chunks/command-${file}-${name}.js'\n`),
      })
    }
}
const main = await esbuild.build({
  ...common,
  entryPoints: cli,
  outdir,
  splitting: true,
  entryNames: '[dir]/[name]',
  chunkNames: 'chunks/[name]-[hash]',
})

// Workers: separate build without splitting, so a worker thread loads one file. The local
// receiver worker is on the critical path of a local fullsync or push (it must load before it
// answers the hello).
const workers = await esbuild.build({
  ...common,
  entryPoints: {
    'workers/local-worker': path.join(compiled, 'core', 'receiver', 'local-worker.js'),
    'workers/hash-worker': path.join(compiled, 'core', 'hash', 'hash-worker.js'),
    'workers/compress-worker': path.join(compiled, 'core', 'compress', 'compress-worker.js'),
  },
  outdir,
  entryNames: '[dir]/[name]',
})

const files = [...main.outputFiles, ...workers.outputFiles]
for (const {path: file} of files) {
  const rel = path.relative(outdir, file)
  if (rel.split(path.sep).length !== 2) throw new Error(`bundle: ${rel} is not one folder below dist/bundle (src/core/locations.ts assumes it)`)
}
// Each file appears whole (temp file, then rename), never half-written to a running vdrep;
// chunk names carry a content hash, so an unchanged chunk keeps its name. Files of earlier
// builds (old chunks, a removed command) are deleted afterwards: oclif would list a stale
// command file as a command when it has no manifest.
const written = new Set()
for (const {path: file, contents} of [...files, ...stubs]) {
  fs.mkdirSync(path.dirname(file), {recursive: true})
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, contents)
  fs.renameSync(tmp, file)
  written.add(file)
}
for (const entry of fs.readdirSync(outdir, {recursive: true, withFileTypes: true})) {
  const file = path.join(entry.parentPath ?? entry.path, entry.name)
  // (*.tmp: another build writing at the same moment)
  if (entry.isFile() && !written.has(file) && !file.endsWith('.tmp')) fs.rmSync(file, {force: true})
}
const js = files.filter((f) => f.path.endsWith('.js'))
const bytes = js.reduce((sum, f) => sum + f.contents.length, 0)
console.log(`bundle: ${js.length} files, ${(bytes / 1024).toFixed(0)} KiB in ${path.relative(root, outdir)}`)
