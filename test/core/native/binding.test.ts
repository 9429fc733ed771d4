// Tests of src/core/native/binding.ts: finding and loading the addon, and forcing the fallbacks.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import * as binding from '../../../src/core/native/binding.js'

const here = path.dirname(fileURLToPath(import.meta.url))

describe('core/native/binding', () => {
  afterEach(() => binding.__forceFallbackForTests(false))

  it('finds the package root by walking up to package.json named vdrep', () => {
    const root = binding.findPackageRoot(here)
    assert.ok(root !== undefined)
    assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).name, 'vdrep')
    assert.equal(binding.findPackageRoot('/'), undefined)
  })

  it('loads the addon when it was built', function () {
    const root = binding.findPackageRoot(here)!
    const built = fs.existsSync(path.join(root, 'build', 'Release', 'vdrep_native.node'))
    if (!built || process.env.VDREP_NO_NATIVE === '1') this.skip()
    assert.equal(binding.nativeAvailable, true, binding.nativeLoadError)
    assert.ok(binding.addon() !== undefined)
    assert.equal(binding.nativeLoadError, undefined)
  })

  it('forcing the fallbacks hides the addon from every caller, and undoing it brings it back', () => {
    binding.__forceFallbackForTests(true)
    assert.equal(binding.nativeAvailable, false)
    assert.equal(binding.addon(), undefined)
    binding.__forceFallbackForTests(false)
    assert.equal(binding.nativeAvailable, binding.loadedAddon !== undefined)
    assert.equal(binding.addon(), binding.loadedAddon)
  })
})
