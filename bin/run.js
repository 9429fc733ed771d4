#!/usr/bin/env node
// The single `vdrep` entry. It runs the esbuild bundle (dist/bundle/, see scripts/bundle.mjs):
// oclif and each command load from a few files instead of ~300, and `execute` comes from the
// bundle so that oclif here is the same copy the bundled commands extend.
import {execute} from '../dist/bundle/cli/oclif.js'

await execute({dir: import.meta.url})
