// The oclif entry of the bundle (scripts/bundle.mjs): bin/run.js starts the CLI with this
// `execute`, and scripts/oclif-manifest.mjs loads the commands with this `Config`, so the
// process holds one copy of @oclif/core, the one the bundled commands share (one Command
// class, one Config, one settings object).
export {Config, execute} from '@oclif/core'
