// Ports for servers a test starts in another process (sshd, `vdrep serve`): the test picks the
// number, the child binds it later. Between the pick and the bind another process must not take
// it, and npm test runs two mocha processes at once (scripts/test-shards.mjs), beside other
// engineers' test runs on a shared machine.
//
// So each test process claims a block of ports of its own: it holds the block's first port
// open (a listening socket: the claim is atomic, and the kernel drops it when the process dies,
// however it dies) and hands out the block's other ports, each checked free by a trial bind.
// The blocks lie below the kernel's ephemeral range (ip_local_port_range, 32768 up by default),
// so no connect() or listen(0) anywhere on the machine is given one of them. With every block
// taken, or a block used up, it falls back to a port the kernel picks (free at the time).
import {createServer, type Server} from 'node:net'

const BASE = 20_000
const BLOCK = 500
const BLOCKS = 25 // 20000..32499

/** vdrep's default ports: something else may listen there (never used by tests). */
const RESERVED = new Set([31031, 44046])
/** Ports this process handed out: two callers must never share one. */
const handedOut = new Set<number>()

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(undefined))
    srv.listen({port, host: '127.0.0.1', exclusive: true}, () => resolve(srv))
  })
}

async function tryPort(port: number): Promise<boolean> {
  const srv = await listen(port)
  if (!srv) return false
  await new Promise((r) => srv.close(r))
  return true
}

interface Block {
  next: number
  end: number
}

let block: Promise<Block | undefined> | undefined

async function claimBlock(): Promise<Block | undefined> {
  // Start at a block chosen by the pid, so processes started together rarely try the same one first.
  for (let i = 0; i < BLOCKS; i++) {
    const first = BASE + ((process.pid + i) % BLOCKS) * BLOCK
    const claim = await listen(first)
    if (!claim) continue
    claim.unref() // held until the process exits; never keeps it alive
    return {next: first + 1, end: first + BLOCK}
  }
  return undefined
}

async function kernelPort(): Promise<number> {
  const srv = await listen(0)
  if (!srv) throw new Error('cannot listen on 127.0.0.1')
  const {port} = srv.address() as {port: number}
  await new Promise((r) => srv.close(r))
  return port
}

/** A port on 127.0.0.1 nothing listens on, that no other caller (here or in another test process) is given. */
export async function freePort(): Promise<number> {
  const mine = await (block ??= claimBlock())
  while (mine && mine.next < mine.end) {
    const port = mine.next++
    if (!RESERVED.has(port) && (await tryPort(port))) {
      handedOut.add(port)
      return port
    }
  }
  for (;;) {
    const port = await kernelPort()
    if (handedOut.has(port) || RESERVED.has(port)) continue
    handedOut.add(port)
    return port
  }
}
