// `vdrep test stop <replica>`, from any shell: asks the test process to stop (SIGTERM to the pid
// its test.json names, sent only while that test's lock is held, so never to a stranger reusing
// a dead test's pid) and waits until its lock is released, which it does after recording the
// test and discarding the side file. A folder whose lock is free is a killed test's leftover:
// it is removed, and the command says no test was running.
import fs from 'node:fs/promises'
import {StateError, VdrepError} from '../errors.js'
import {tryLockTest} from '../locks/index.js'
import {readReplicaState, type TestRecord} from '../receiver/replica-state.js'
import {readTestInfo, testDirFor, type TestInfo} from './paths.js'
import {whoIs} from './running.js'

export interface TestStopResult {
  replica: string
  info: TestInfo
  /** The record the test process wrote in the replica's state, when it did. */
  record?: TestRecord
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Whether a live test holds the folder's lock now (probing takes and drops it otherwise). */
async function running(dir: string): Promise<boolean> {
  const probe = await tryLockTest(dir)
  if (!probe) return true
  // Nobody: a killed test's leftovers (or none). Cleared while we hold the lock.
  const names = await fs.readdir(dir).catch(() => [] as string[])
  for (const n of names) if (n !== 'lock') await fs.rm(`${dir}/${n}`, {recursive: true, force: true})
  await probe.release()
  await fs.rmdir(dir).catch(() => {})
  return false
}

export async function stopTest(replica: string, timeoutMs = 90_000): Promise<TestStopResult> {
  const dir = testDirFor(replica)
  const exists = await fs.lstat(dir).then(
    () => true,
    () => false,
  )
  const before = exists ? await readTestInfo(dir) : null
  if (!exists || !(await running(dir))) {
    throw new StateError(
      'TEST_NOT_RUNNING',
      `no test of ${replica} is running${before ? ` (a test killed before it stopped left its side file; it was removed)` : ''}`,
    )
  }
  // The lock is held; its holder writes test.json right after it starts serving.
  let info = before
  for (let i = 0; !info && i < 100; i++) {
    await sleep(50)
    info = await readTestInfo(dir)
  }
  if (!info) throw new StateError('TEST_NOT_RUNNING', `the test of ${replica} is still starting (no test.json yet)`, {hint: 'run the command again'})
  const who = await whoIs(info.pid)
  if (who === 'other')
    throw new StateError('TEST_NOT_RUNNING', `${testDirFor(replica)}/test.json names pid ${info.pid}, which is not a vdrep test start: no signal was sent`, {
      hint: 'stop the test where it runs (SIGTERM or Ctrl-C)',
    })
  try {
    if (who === 'test') process.kill(info.pid, 'SIGTERM')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
  }
  const deadline = Date.now() + timeoutMs
  while (await running(dir)) {
    if (Date.now() > deadline)
      throw new VdrepError('TEST_STOP_TIMEOUT', `the test of ${replica} (pid ${info.pid}) did not stop within ${Math.round(timeoutMs / 1000)} s`)
    await sleep(50)
  }
  const {state} = await readReplicaState(replica)
  const record = state?.tests?.find((t) => t.startedMs === info.startedMs && t.seq === info.seq)
  return {replica, info, record}
}
