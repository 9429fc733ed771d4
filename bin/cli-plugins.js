// Which oclif plugins bin/run.js loads, as a pure function of the command line so that a test
// can check the rules.
//
// The help, not-found and autocomplete plugins (package.json oclif.plugins) are loaded from
// node_modules, outside the bundle: with them, every start read their manifests and imported
// their code (measured: `vdrep --version` 0.13 -> 0.25 s). A run of a vdrep command needs none
// of them (its own --help and -h are @oclif/core's), so they are loaded only for what they
// serve: `vdrep`, `vdrep help ...`, `vdrep autocomplete ...`, and a word that is no command
// (the not-found hook suggests the closest one).

/**
 * @param {string[]} args the command line after the script (process.argv.slice(2))
 * @param {Set<string>} commandIds vdrep's own commands
 * @returns {boolean} whether the plugins are needed
 */
export function needsPlugins(args, commandIds) {
  const [first] = args
  if (first === undefined) return true
  if (first === '--version' || first === '-v') return false
  return !commandIds.has(first)
}
