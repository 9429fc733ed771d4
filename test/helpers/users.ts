// System users for tests that need a second uid (peer-credential refusals, runuser). Test files
// run at the same time (npm test's shards; engineers' runs side by side), so two of them may
// ask for the same user at once: useradd then fails for the loser ("already exists", or it
// cannot lock /etc/passwd while the other holds it). Both mean "try again and look": the user
// is there, or will be, once the lock is free.
import {spawnSync} from 'node:child_process'

const pause = new Int32Array(new SharedArrayBuffer(4))
const sleepSync = (ms: number) => Atomics.wait(pause, 0, 0, ms)

function exists(name: string): boolean {
  return spawnSync('id', ['-u', name], {stdio: 'ignore'}).status === 0
}

/** Run a user-database command until it succeeds (another process may hold the lock); its success. */
function retried(cmd: string, args: string[], done: () => boolean): boolean {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (done()) return true
    if (spawnSync(cmd, args, {stdio: 'ignore'}).status === 0) return true
    sleepSync(100 + attempt * 20)
  }
  return done()
}

export interface UserOptions {
  /** Login shell: /bin/sh for a user who logs in over SSH, nologin otherwise (the default). */
  shell?: string
  /** Give the account the password '*' (no password, but not locked: sshd refuses locked accounts). */
  unlocked?: boolean
}

/**
 * Make sure the system user `name` exists (creating it needs root); whether it does. Never
 * removed: later runs and other test files reuse it.
 */
export function ensureUser(name: string, opts: UserOptions = {}): boolean {
  if (!exists(name)) {
    if (process.getuid?.() !== 0) return false
    const shell = opts.shell ?? '/usr/sbin/nologin'
    if (!retried('useradd', ['--system', '--no-create-home', '--shell', shell, name], () => exists(name))) return false
  }
  if (opts.unlocked) {
    const unlocked = () => /^[^:]*:\*:/.test(spawnSync('getent', ['shadow', name], {encoding: 'utf8'}).stdout ?? '')
    if (!retried('usermod', ['-p', '*', name], unlocked)) return false
  }
  return true
}
