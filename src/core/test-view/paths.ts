// A test boot's folder, `<replica>.vdrep-test/` (mode 0700, beside the replica; a reserved
// name like `.vdrep-points`): `lock` (locks/test-lock.ts), `overlay.img` (the side file: the
// guest's writes), `test.json` (who runs the test: pid, point, start, sockets). All of it is
// discarded when the test stops; a folder left by a killed test is removed by the next start
// or stop.
import fs from 'node:fs/promises'
import path from 'node:path'

export const TEST_SUFFIX = '.vdrep-test'

export const testDirFor = (replica: string): string => `${replica}${TEST_SUFFIX}`
export const sideFileIn = (dir: string): string => path.join(dir, 'overlay.img')
export const infoFileIn = (dir: string): string => path.join(dir, 'test.json')

/** What a running test writes in test.json for `vdrep test stop` and `vdrep points`. */
export interface TestInfo {
  pid: number
  seq: number
  pointMs: number
  startedMs: number
  capBytes: number
  nbd: string[]
}

export function decodeTestInfo(text: string): TestInfo | null {
  try {
    const v = JSON.parse(text) as Partial<TestInfo>
    const ints = [v.pid, v.seq, v.pointMs, v.startedMs, v.capBytes]
    if (!ints.every((n) => Number.isSafeInteger(n) && (n as number) >= 0) || !Array.isArray(v.nbd)) return null
    return v as TestInfo
  } catch {
    return null
  }
}

export async function readTestInfo(dir: string): Promise<TestInfo | null> {
  const text = await fs.readFile(infoFileIn(dir), 'utf8').catch(() => null)
  return text === null ? null : decodeTestInfo(text)
}
