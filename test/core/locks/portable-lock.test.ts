// Tests of src/core/locks/portable-lock.ts, the lock used without the addon: one holder per
// name in this process and across processes, free again at release or when the holder is
// killed, and a held lock does not keep a process alive.

import assert from 'node:assert/strict'
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'

import {portableLockName, tryPortableLock} from '../../../src/core/locks/portable-lock.js'

const moduleUrl = new URL('../../../src/core/locks/portable-lock.js', import.meta.url).href

/** A child that takes `key`, says "held" or "refused", and keeps what it took until killed. */
async function childTakes(key: string): Promise<{child: ChildProcess; said: string}> {
  const script = `const m = await import(${JSON.stringify(moduleUrl)})
    const lock = await m.tryPortableLock(${JSON.stringify(key)})
    process.stdout.write(lock ? 'held\\n' : 'refused\\n')
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit']})
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  return {child, said: chunk.toString().trim()}
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

describe('core/locks/portable-lock', () => {
  const key = `test ${process.pid} ${Date.now()}`

  it('names fit the abstract namespace (leading NUL, under 108 bytes) and differ per key', () => {
    const name = portableLockName(key)
    assert.equal(name[0], '\0')
    assert.ok(Buffer.byteLength(name) < 108)
    assert.notEqual(portableLockName(`${key}x`), name)
  })

  it('one holder in this process; free again after release, and a second release changes nothing', async () => {
    const a = await tryPortableLock(key)
    assert.ok(a !== null)
    assert.equal(await tryPortableLock(key), null, 'a second taker in the same process is refused')
    const other = await tryPortableLock(`${key} other`)
    assert.ok(other !== null, 'another name is another lock')
    a.release()
    const b = await tryPortableLock(key)
    assert.ok(b !== null, 'free after release')
    a.release() // must not release b's
    assert.equal(await tryPortableLock(key), null, 'a stale second release did not free the new holder')
    b.release()
    other.release()
  })

  it('excludes across processes both ways, and a killed holder frees it at once', async () => {
    const mine = await tryPortableLock(key)
    assert.ok(mine !== null)
    const refused = await childTakes(key)
    assert.equal(refused.said, 'refused')
    await kill(refused.child)
    mine.release()
    const holder = await childTakes(key)
    assert.equal(holder.said, 'held')
    assert.equal(await tryPortableLock(key), null, 'the child holds it')
    await kill(holder.child)
    const after = await tryPortableLock(key)
    assert.ok(after !== null, 'the dead holder left nothing behind')
    after.release()
  })

  it('a held lock does not keep the process alive', () => {
    const script = `const m = await import(${JSON.stringify(moduleUrl)}); globalThis.held = await m.tryPortableLock('exit test ${process.pid}'); console.log(globalThis.held ? 'held' : 'refused')`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {encoding: 'utf8', timeout: 10_000})
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'held')
  })
})
