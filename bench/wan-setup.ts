// Setup for the wan bench section (wan-bench.ts): the 1% changes, the vdrep sources and their
// .psf files, and the shell runner for rsync.
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {sh} from './bench-common.js'
import {runVdrep} from './ssh-bench.js'
import {seededBytes, seededText} from '../test/helpers/disks.js'
import type {Sshd} from '../test/helpers/sshd.js'

export const BLOCK = 64 * 1024

/** Pick 1% of the blocks that hold data (a push changes written blocks, not holes). */
export function onePercent(size: number, seed: string): number[] {
  const blocks = Math.floor(size / BLOCK)
  const want = Math.max(1, Math.round(blocks * 0.01))
  const r = seededBytes(seed, want * 8 + 64)
  const picks = new Set<number>()
  for (let i = 0; picks.size < want; i++) {
    const b = r.readUInt32LE((i * 4) % (r.length - 4)) % blocks
    // makeRealMixedDisk: 1 MiB regions random, random, hole, text, text
    if (Math.floor((b * BLOCK) / (1 << 20)) % 5 !== 2) picks.add(b)
  }
  return [...picks].sort((a, b) => a - b)
}

/** Overwrite `blocks`: even ones with fresh text, odd ones with random bytes. */
export async function change(file: string, blocks: number[], seed: string): Promise<void> {
  const fh = await fs.open(file, 'r+')
  try {
    for (const [i, b] of blocks.entries()) {
      const data = i % 2 ? seededBytes(`${seed}:${b}`, BLOCK) : seededText(`${seed}:${b}`, BLOCK)
      await fh.write(data, 0, BLOCK, b * BLOCK)
    }
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

export function runShell(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', cmd], {stdio: ['ignore', 'ignore', 'pipe']})
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err}`))))
  })
}

/** A vdrep source (a copy of `disk`) with its .psf pointing at `replica` over the WAN. */
export async function vdrepDisk(
  work: string,
  root: string,
  disk: string,
  compress: string,
  env: NodeJS.ProcessEnv,
  sshd: Sshd,
  login: string,
  ports: [number, number],
): Promise<{src: string; replica: string}> {
  const dir = path.join(work, `vdrep-${compress}`)
  await fs.mkdir(dir, {recursive: true})
  const src = path.join(dir, 'disk.img')
  sh(`cp --sparse=always '${disk}' '${src}'`)
  const replica = path.join(root, `vdrep-${compress}.img`)
  const args = ['--known-hosts', sshd.knownHostsFile, '--identity', sshd.clientKey.path, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])]
  const to = `${login}:${replica}`
  await runVdrep(['init', src, '--to', to, ...args, '--block-size', String(BLOCK), '--compress', compress, '--serve-command', 'false'], env)
  return {src, replica}
}
