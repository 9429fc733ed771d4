// Run a real `vdrep` command under the power-cut recorder (native/recorder/, built by
// scripts/build-recorder.cjs): its file operations under `roots` land in a log, decoded here.
import {execFileSync} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {PROJECT_ROOT, vdrep, type CliResult} from '../cli.js'
import {decodeRecording, type Recorded} from './recording.js'

let built: string | undefined

/** The recorder's path, built on first use; throws (with the compiler's words) where it cannot be. */
export function recorderLibrary(): string {
  built ??= execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts', 'build-recorder.cjs')], {encoding: 'utf8'}).trim()
  return built
}

/** The environment that records a child's operations under `roots` into `log`. */
export function recordingEnv(roots: string[], log: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...extra,
    LD_PRELOAD: recorderLibrary(),
    VDREP_PC_LOG: log,
    VDREP_PC_ROOT: roots.join(':'),
    // io_uring submissions bypass glibc, so the shim would not see them.
    UV_USE_IO_URING: '0',
  }
}

export async function recordVdrep(args: string[], roots: string[], log: string, env: NodeJS.ProcessEnv = {}): Promise<{result: CliResult; ops: Recorded[]}> {
  await fs.rm(log, {force: true})
  const result = await vdrep(args, {env: recordingEnv(roots, log, env)})
  const ops = decodeRecording(await fs.readFile(log).catch(() => Buffer.alloc(0)))
  return {result, ops}
}
