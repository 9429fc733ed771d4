// How long bin/run.js keeps V8's optimizing compiler off (see the comment there), as a pure
// function of the command line and the environment so that a test can check the rules.
//
// VDREP_OPTIMIZE_AFTER_MS sets the delay (0: optimize from the start, as plain node does);
// unset, empty or not a number: the default; capped at what a timer can wait (2^31-1 ms).
// A node already told --no-opt (NODE_OPTIONS, node's own flags) is left as it was told (0).
// The daemons are exempt (0): `serve` and `track --nbd` run for days, and their hot paths (an
// NBD write, a received block) should be optimized from the first requests on.

export const DEFAULT_OPTIMIZE_AFTER_MS = 1500

/**
 * @param {string[]} args the command line after the script (process.argv.slice(2))
 * @param {Record<string, string | undefined>} env
 * @param {string[]} execArgv node's own flags
 * @returns {number} milliseconds to run without TurboFan; 0 for none
 */
export function optimizeDelay(args, env, execArgv) {
  const toldNoOpt = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--no-opt')
  const [command, ...rest] = args
  const daemon = command === 'serve' || (command === 'track' && !rest.includes('--scan'))
  if (toldNoOpt || daemon) return 0
  const raw = env.VDREP_OPTIMIZE_AFTER_MS?.trim()
  const delay = raw ? Number(raw) : Number.NaN
  return Number.isFinite(delay) && delay >= 0 ? Math.min(delay, 2 ** 31 - 1) : DEFAULT_OPTIMIZE_AFTER_MS
}
