#!/usr/bin/env node
// The single `vdrep` entry: oclif loads the compiled commands from dist/.
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
