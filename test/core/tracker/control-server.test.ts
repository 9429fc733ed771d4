// The control server's start: a client that connects between the bind and the end of
// listen() (the socket's chmod) is served once the server is ready. It used to be dropped
// unanswered, and the client (a status poll right at a tracker's start) waited forever.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {ControlServer} from '../../../src/core/tracker/control-server.js'
import {TrackerControlClient} from '../../../src/core/tracker/control-client.js'
import type {ControlHandler} from '../../../src/core/tracker/control-server.js'
import {tempDir} from '../../helpers/disks.js'

describe('tracker control server', () => {
  let dir: string
  let server: ControlServer | undefined
  beforeEach(async () => (dir = await tempDir('vdrep-ctl-')))
  afterEach(async () => {
    await server?.close()
    server = undefined
    await fs.rm(dir, {recursive: true, force: true})
  })

  it('a client connecting while listen() still sets the socket up is answered once it is ready', async () => {
    const sock = path.join(dir, 'ctl.sock')
    const unused = () => Promise.reject(new Error('not in this test'))
    const handler = {
      status: () => ({pid: 4242}),
      freeze: unused,
      read: unused,
      complete: unused,
      pending: () => {
        throw new Error('not in this test')
      },
      disconnected: () => {},
      transition: unused,
    } as unknown as ControlHandler
    // Hold listen() in its chmod, after the bind: the window the early client falls into.
    const chmod = fs.chmod
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    ;(fs as {chmod: typeof fs.chmod}).chmod = async (...args: Parameters<typeof fs.chmod>) => {
      await held
      return chmod(...args)
    }
    try {
      const listening = ControlServer.listen(sock, handler)
      let client: TrackerControlClient | undefined
      for (let i = 0; i < 200 && !client; i++) {
        client = await TrackerControlClient.connect('unused', {socketPath: sock}).catch(() => undefined)
        if (!client) await new Promise((r) => setTimeout(r, 5))
      }
      assert.ok(client, 'connected while listen() was held')
      const answer = client.status()
      release()
      server = await listening
      const st = await Promise.race([answer, new Promise((_, reject) => setTimeout(() => reject(new Error('no answer: the early client was dropped')), 3000))])
      assert.equal((st as {pid: number}).pid, 4242)
      await client.close()
    } finally {
      ;(fs as {chmod: typeof fs.chmod}).chmod = chmod
      release()
    }
  })
})
