// test/helpers/users.ts: npm test's two shards may ask for the same system user at once (the
// peer-credential tests of either). Broken on purpose: four processes make one new user at the
// same moment; every one must get it (useradd's "already exists" and its lock held by another
// are not failures), and none may skip its test for want of the user.
import assert from 'node:assert/strict'
import {execFile, spawnSync} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

const execFileP = promisify(execFile)
const USERS_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'users.js')

describe('test helpers: ensureUser across processes', function () {
  this.timeout(60_000)
  // A name of this run's own, removed after: never one another test file uses.
  const name = `vdrep-race${process.pid % 100000}`

  before(function () {
    if (process.getuid?.() !== 0) this.skip() // useradd needs root
  })
  after(() => {
    spawnSync('userdel', [name], {stdio: 'ignore'})
  })

  it('four processes making one new user at once all get it', async () => {
    spawnSync('userdel', [name], {stdio: 'ignore'})
    const code = `const {ensureUser} = await import(${JSON.stringify(USERS_JS)}); console.log(ensureUser(${JSON.stringify(name)}, {shell: '/bin/sh', unlocked: true}))`
    const runs = await Promise.all(Array.from({length: 4}, () => execFileP(process.execPath, ['--input-type=module', '-e', code])))
    assert.deepEqual(
      runs.map((r) => r.stdout.trim()),
      ['true', 'true', 'true', 'true'],
    )
    assert.equal(spawnSync('id', ['-u', name]).status, 0)
    const shadow = spawnSync('getent', ['shadow', name], {encoding: 'utf8'}).stdout
    assert.match(shadow, new RegExp(`^${name}:\\*:`), 'unlocked: the password is *, not !')
  })
})
