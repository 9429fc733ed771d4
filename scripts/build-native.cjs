#!/usr/bin/env node
// Builds the optional N-API addon (binding.gyp -> build/Release/vdrep_native.node) at
// `npm install` / `npm ci`. It must NEVER fail the install: vdrep works without the addon
// (src/core/native/ has a fallback for every call; the locks then use a portable lock, src/core/locks/), so on any problem we print one
// line and exit 0. Set VDREP_NATIVE_VERBOSE=1 to see node-gyp's output, VDREP_SKIP_NATIVE=1
// to skip the build. CommonJS (.cjs) because the package is "type": "module" and this must
// run before anything is compiled.
'use strict'

const {spawnSync} = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const verbose = process.env.VDREP_NATIVE_VERBOSE === '1'
const FAILED = 'vdrep: native helpers not built, using fallbacks'

function giveUp(reason) {
  console.warn(FAILED + (verbose && reason ? ` (${reason})` : ''))
  process.exit(0)
}

// node-gyp is not a dependency of vdrep; npm bundles one. npm tells lifecycle scripts
// where it is (npm_config_node_gyp); otherwise look beside the npm that runs us, then
// beside the npm on PATH's node.
function findNodeGyp() {
  const candidates = []
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp)
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', {paths: [root]}))
  } catch {
    // not installed locally: expected
  }
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  }
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  return candidates.find((p) => {
    try {
      return fs.statSync(p).isFile()
    } catch {
      return false
    }
  })
}

function main() {
  if (process.env.VDREP_SKIP_NATIVE === '1') giveUp('VDREP_SKIP_NATIVE=1')
  // The addon wraps Linux-only calls (fallocate, BLKGETSIZE64, SO_PEERCRED as used here).
  if (process.platform !== 'linux') giveUp(`platform ${process.platform}`)
  if (!fs.existsSync(path.join(root, 'binding.gyp'))) giveUp('no binding.gyp')
  const nodeGyp = findNodeGyp()
  if (!nodeGyp) giveUp('node-gyp not found')
  // --jobs max: make compiles the ten sources one per core, not one after another (npm ci's
  // install step waits for this).
  const args = [nodeGyp, 'rebuild', '--jobs', 'max']
  // Offline machines: without a nodedir node-gyp downloads Node's headers. npm passes its
  // `nodedir` setting as npm_config_nodedir; when run by hand, use the headers installed
  // beside this node (e.g. /usr/include/node) if they are there.
  const prefix = path.resolve(path.dirname(process.execPath), '..')
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`)
  }
  const result = spawnSync(process.execPath, args, {
    cwd: root,
    stdio: verbose ? 'inherit' : 'pipe',
    encoding: 'utf8',
    timeout: 5 * 60 * 1000,
  })
  const built = path.join(root, 'build', 'Release', 'vdrep_native.node')
  if (result.status !== 0 || !fs.existsSync(built)) {
    giveUp(result.error ? result.error.message : `node-gyp exited with ${result.status ?? result.signal}`)
  }
}

try {
  main()
} catch (err) {
  giveUp(err && err.message)
}
