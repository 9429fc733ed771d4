// Writes oclif.manifest.json after a build, so `vdrep <command>` loads only that command's
// module instead of importing every command (and ssh2, the tracker...) to list them.
// Measured here: start-up of a failing `vdrep fullsync /nonexistent` from ~0.8 s to ~0.4 s.
// Config comes from the bundle (scripts/bundle.mjs), the same copy of @oclif/core that the
// bundled commands it loads extend; run it after the bundle step.
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {Config} from '../dist/bundle/cli/oclif.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const file = path.join(root, 'oclif.manifest.json')
fs.rmSync(file, {force: true})
const config = await Config.load(root)
const plugin = config.plugins.get(config.pjson.name)
const ids = Object.keys(plugin.manifest.commands)
// An empty manifest would make every command "not found": fail the build instead.
if (ids.length === 0) throw new Error(`oclif-manifest: no commands found under ${config.pjson.oclif.commands}`)
fs.writeFileSync(file, JSON.stringify(plugin.manifest, null, 1))
console.log(`oclif-manifest: ${ids.length} commands (${ids.join(', ')})`)
