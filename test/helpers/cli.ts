// Run the real `vdrep` binary (bin/run.js) as a child process, the way users and cron do.
import {spawn, type ChildProcess} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const VDREP_BIN = path.join(PROJECT_ROOT, 'bin', 'run.js')

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export function startVdrep(args: string[], opts: {cwd?: string; env?: NodeJS.ProcessEnv} = {}): ChildProcess {
  return spawn(process.execPath, [VDREP_BIN, ...args], {
    cwd: opts.cwd,
    env: {...process.env, ...opts.env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

export function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({code, signal, stdout, stderr}))
  })
}

export function vdrep(args: string[], opts: {cwd?: string; env?: NodeJS.ProcessEnv} = {}): Promise<CliResult> {
  return collect(startVdrep(args, opts))
}

/** Parse the one JSON object a `--json` run prints. */
export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}
