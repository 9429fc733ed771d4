// Writes oclif.manifest.json after a build, so `vdrep <command>` loads only that command's
// module instead of importing every command (and ssh2, the tracker...) to list them.
// Measured here: start-up of a failing `vdrep fullsync /nonexistent` from ~0.8 s to ~0.4 s.
import {Config} from '@oclif/core'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const file = path.join(root, 'oclif.manifest.json')
fs.rmSync(file, {force: true})
const config = await Config.load(root)
const plugin = config.plugins.get(config.pjson.name)
fs.writeFileSync(file, JSON.stringify(plugin.manifest, null, 1))
