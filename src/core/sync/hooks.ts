// --pre-hook / --post-hook: commands run around the point in time (for example to freeze and
// thaw the guest's file systems through its agent). A failing pre-hook stops the push.
import {spawn} from 'node:child_process'
import {VdrepError} from '../errors.js'

export async function runHook(command: string, phase: 'pre' | 'post', disk: string, extraEnv: Record<string, string> = {}): Promise<void> {
  const code = await new Promise<number | null>((resolve, reject) => {
    const env = {...process.env, ...extraEnv, VDREP_DISK: disk, VDREP_HOOK: phase}
    const child = spawn('/bin/sh', ['-c', command], {stdio: ['ignore', 'ignore', 'inherit'], env})
    child.on('error', reject)
    child.on('exit', (c) => resolve(c))
  })
  if (code !== 0) throw new VdrepError('HOOK_FAILED', `the ${phase}-hook exited with ${code}: ${command}`)
}
