// A foreground `vdrep` (export --nbd, test start) as a child: resolves once it prints the line
// that says it serves, rejects if it exits first; stop it by signal.
import type {ChildProcess} from 'node:child_process'
import {startVdrep, type CliResult} from './cli.js'

export interface Foreground {
  child: ChildProcess
  /** The line that matched. */
  line: string
  stdout(): string
  stderr(): string
  exited: Promise<CliResult>
  stop(signal?: NodeJS.Signals): Promise<CliResult>
}

export function startForeground(args: string[], ready: RegExp, env?: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<Foreground> {
  const child = startVdrep(args, {env})
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({code, signal, stdout: out, stderr: err})))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`vdrep ${args.join(' ')} did not start in ${timeoutMs} ms\n${out}\n${err}`))
    }, timeoutMs)
    const onData = () => {
      const line = out.split('\n').find((l) => ready.test(l))
      if (!line) return
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      resolve({
        child,
        line,
        stdout: () => out,
        stderr: () => err,
        exited,
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal)
          return exited
        },
      })
    }
    child.stdout?.on('data', onData)
    void exited.then((r) => {
      clearTimeout(timer)
      reject(new Error(`vdrep ${args.join(' ')} exited (${r.code ?? r.signal}) before serving:\n${r.stdout}\n${r.stderr}`))
    })
  })
}
