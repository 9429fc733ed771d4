// Whether a test of a replica runs now, for listings (`vdrep points`, a replica-host status):
// read-only, it never takes the test lock (that would make a starting test fail): test.json
// names the pid, and /proc says whether that pid is a `vdrep test start`.
import fs from 'node:fs/promises'
import {readTestInfo, testDirFor, type TestInfo} from './paths.js'

export async function runningTest(replica: string): Promise<TestInfo | null> {
  const dir = testDirFor(replica)
  if (
    !(await fs.lstat(dir).then(
      (st) => st.isDirectory(),
      () => false,
    ))
  )
    return null
  const info = await readTestInfo(dir)
  if (!info) return null
  return (await whoIs(info.pid)) === 'test' ? info : null
}

/**
 * Whether `pid` runs `vdrep test start`: test.json is only as trustworthy as whoever could write
 * it, and a stop run as root must never signal some other process a file names.
 */
export async function whoIs(pid: number): Promise<'test' | 'other' | 'gone'> {
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null)
  if (cmdline === null) return 'gone' // it ended meanwhile: nothing to signal, the wait below decides
  const args = cmdline.split('\0')
  const i = args.indexOf('test')
  return i >= 0 && args[i + 1] === 'start' ? 'test' : 'other'
}
