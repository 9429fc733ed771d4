// test/helpers/ports.ts: npm test runs two test processes at once (scripts/test-shards.mjs), and
// a port one picks for a child server must never be picked by the other before the child binds
// it. Broken on purpose: two processes asking at once, a port in the block already taken by
// something else, every block already claimed.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {createServer, type Server} from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {freePort} from './ports.js'

const execFileP = promisify(execFile)
const PORTS_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ports.js')
const BLOCKS = Array.from({length: 25}, (_, i) => 20_000 + i * 500)

/** `count` ports from freePort() in a new process. */
async function portsOfChild(count: number): Promise<number[]> {
  const code = `const {freePort} = await import(${JSON.stringify(PORTS_JS)}); const out = []; for (let i = 0; i < ${count}; i++) out.push(await freePort()); console.log(JSON.stringify(out))`
  const {stdout} = await execFileP(process.execPath, ['--input-type=module', '-e', code])
  return JSON.parse(stdout) as number[]
}

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(undefined))
    srv.listen(port, '127.0.0.1', () => resolve(srv))
  })
}

describe('test helpers: freePort across processes', function () {
  this.timeout(30_000)

  it('two processes asking at once never get the same port, and none from the ephemeral range', async () => {
    const [a, b] = await Promise.all([portsOfChild(40), portsOfChild(40)])
    assert.equal(new Set(a).size, 40)
    assert.equal(new Set(b).size, 40)
    assert.deepEqual(
      a.filter((p) => b.includes(p)),
      [],
    )
    // Each process had a block of its own (the machine may have others' test runs holding some).
    const blockOf = (p: number) => Math.floor((p - 20_000) / 500)
    assert.equal(new Set(a.map(blockOf)).size, 1, JSON.stringify(a))
    assert.equal(new Set(b.map(blockOf)).size, 1, JSON.stringify(b))
    assert.notEqual(blockOf(a[0]!), blockOf(b[0]!))
  })

  it('skips a port of its block that something else listens on', async () => {
    const first = await freePort()
    const squatter = await listen(first + 1)
    assert.ok(squatter, `port ${first + 1} was free to take`)
    try {
      const next = await freePort()
      assert.notEqual(next, first + 1)
      assert.ok(next > first + 1, `${next} after ${first}`)
    } finally {
      await new Promise((r) => squatter.close(r))
    }
  })

  it('with every block claimed, hands out a port the kernel picks (free, never a block port)', async () => {
    const held = (await Promise.all(BLOCKS.map(listen))).filter((s): s is Server => s !== undefined)
    try {
      const ports = await portsOfChild(5)
      assert.equal(new Set(ports).size, 5)
      for (const p of ports) assert.ok(p >= 32_768 || p < 20_000, `${p} is in a block, though every block was held`)
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))))
    }
  })
})
