// Round trips, counted (not timed) through the delay relay (10 ms each way) in front of a real
// sshd: a push of one block and a full sync with nothing to send cost a fixed number of turns
// (the client speaking after hearing), whatever the disk size, and a full sync over ssh2 uses
// one login for the sync and its source description. Counting makes this a test that a load
// spike cannot fail; `npm run bench -- --only latency` times the same operations.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {cmpEqual, MiB, SshCycle} from '../helpers/cycle.js'
import {startDelayRelay, type DelayRelay} from '../helpers/delay-relay.js'
import {makeMixedDisk, scribbleBlocks} from '../helpers/disks.js'

/** Turns a push of one block may take: login 6, channel 1, hello 1, bundle 1, close 1, and slack. */
const PUSH_TURNS = 12
/** A full sync with nothing to send: the push's, the done/verify exchange, the description, and turns of the streams. */
const FULLSYNC_TURNS = 40

for (const carrier of ['ssh2', 'openssh'] as const) {
  describe(`round trips at 20 ms RTT (${carrier})`, function () {
    this.timeout(120_000)
    let c: SshCycle
    let relay: DelayRelay

    before(async () => {
      c = await SshCycle.start()
      relay = await startDelayRelay({targetPort: c.sshd.port, delayMs: 10})
      const config = path.join(c.dir, 'ssh_config')
      await fs.writeFile(config, '# none\n')
      c.env = {...c.env, VDREP_SSH_CONFIG: config}
    })
    after(async () => {
      await relay.close()
      await c.stop()
    })

    it(`push of 1 block: at most ${PUSH_TURNS} turns, on any disk size; a full sync with nothing to send at most ${FULLSYNC_TURNS}`, async () => {
      const perSize: number[] = []
      for (const size of [4 * MiB, 64 * MiB]) {
        const disk = path.join(c.dir, `${carrier}-${size}.img`)
        const replica = path.join(c.root, `${carrier}-${size}.img`)
        await makeMixedDisk(disk, size, `lat-${size}`)
        const kh = path.join(c.dir, `${carrier}-${size}-kh`)
        const key = c.sshd.hostKeys.ed25519
        await fs.writeFile(kh, `[127.0.0.1]:${relay.port} ${key.type} ${key.blob.toString('base64')}\n`)
        const flags = [
          '--known-hosts',
          kh,
          '--identity',
          c.sshd.clientKey.path,
          '--fullsync-port',
          String(c.serve.ports[0]),
          '--delta-port',
          String(c.serve.ports[1]),
        ]
        const i = await c.vdrep([
          'init',
          disk,
          '--to',
          `${c.sshd.user}@127.0.0.1:${relay.port}:${replica}`,
          '--ssh',
          carrier,
          '--serve-command',
          'false',
          ...flags,
        ])
        assert.equal(i.code, 0, i.stderr)
        assert.equal((await c.vdrep(['fullsync', disk])).code, 0)

        let before = {turns: relay.turns, connections: relay.connections}
        const again = await c.vdrep(['fullsync', disk])
        assert.equal(again.code, 0, again.stderr)
        const syncTurns = relay.turns - before.turns
        assert.ok(syncTurns <= FULLSYNC_TURNS, `a full sync with nothing to send took ${syncTurns} turns`)
        if (process.env.VDREP_TEST_DEBUG) console.log(`${carrier}: full sync of ${size} bytes, nothing to send: ${syncTurns} turns`)
        // ssh2: the source is described on a second channel of the sync's login.
        if (carrier === 'ssh2') assert.equal(relay.connections - before.connections, 1, 'one SSH login per full sync')

        await scribbleBlocks(disk, 64 * 1024, 1, `lat-push-${size}`)
        before = {turns: relay.turns, connections: relay.connections}
        const p = await c.vdrep(['push', disk])
        assert.equal(p.code, 0, p.stderr)
        const pushTurns = relay.turns - before.turns
        assert.equal(relay.connections - before.connections, 1, 'one SSH login per push')
        assert.ok(pushTurns <= PUSH_TURNS, `a push of one block took ${pushTurns} turns`)
        assert.ok(await cmpEqual(disk, replica))
        perSize.push(pushTurns)
      }
      // A fixed cost: 16 times the disk, the same turns (one either way: packets may coalesce).
      assert.ok(Math.abs(perSize[0] - perSize[1]) <= 1, `push turns by disk size: ${perSize.join(', ')}`)
      if (process.env.VDREP_TEST_DEBUG) console.log(`${carrier}: push turns ${perSize.join(', ')}`)
    })
  })
}
