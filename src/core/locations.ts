// Where vdrep's own files are at run time, for the few places that need a file rather than an
// import: the entry files of worker threads (a Worker is started from a file) and bin/run.js
// (for the cron line `init` prints).
//
// The same code runs from two layouts, so a path relative to `import.meta.url` alone is wrong
// in one of them:
// - compiled by tsc: this file is dist/src/core/locations.js, beside the rest of dist/src/core
//   (tests import dist/src/** directly, so this layout must keep working);
// - bundled by scripts/bundle.mjs (what bin/run.js runs): this code is copied into a file one
//   folder below dist/bundle/ (commands/*.js or chunks/*.js; the bundle script checks that
//   every output sits at that depth), and the workers are bundled to dist/bundle/workers/.
// The bundler replaces `__VDREP_BUNDLED__` with `true` (esbuild `define`); unbundled the name
// is never declared, and `typeof` of an undeclared name is 'undefined', not an error.

declare const __VDREP_BUNDLED__: boolean | undefined

/** True when this code runs from the esbuild bundle under dist/bundle/. */
export const BUNDLED = typeof __VDREP_BUNDLED__ !== 'undefined' && __VDREP_BUNDLED__ === true

/** The entry file of a worker thread, as `new Worker(url)` takes it. */
export function workerUrl(name: 'local-worker' | 'hash-worker' | 'compress-worker'): URL {
  if (BUNDLED) return new URL(`../workers/${name}.js`, import.meta.url)
  const unbundled = {'local-worker': './receiver/local-worker.js', 'hash-worker': './hash/hash-worker.js', 'compress-worker': './compress/compress-worker.js'}
  return new URL(unbundled[name], import.meta.url)
}

/** bin/run.js, the `vdrep` command itself: three folders up in both layouts
 * (dist/src/core/locations.js and dist/bundle/<folder>/<file>.js). */
export function binPath(): URL {
  return new URL('../../../bin/run.js', import.meta.url)
}
