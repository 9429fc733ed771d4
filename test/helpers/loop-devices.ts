// Real block devices for tests: loop devices over files in a temp folder (losetup, util-linux;
// root). Every device attached here is detached by detachAll(), which each suite calls in its
// after hook, so a failed test leaves no device behind. A machine that cannot attach one (no
// losetup, not root, no loop driver) gets a skip whose reason is printed, never a silent pass.
import {spawnSync} from 'node:child_process'
import fs from 'node:fs/promises'

const attached = new Set<string>()

/** Why this machine cannot attach a loop device, or null when it can. */
export function loopUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'attaching loop devices needs root'
  const r = spawnSync('losetup', ['--version'], {encoding: 'utf8'})
  if (r.error) return `losetup (util-linux) is not installed: ${r.error.message}`
  return null
}

/** In a before hook: skip the suite (saying why on stderr) where no loop device can be attached. */
export function requireLoopDevices(ctx: Mocha.Context): void {
  const why = loopUnavailable()
  if (why === null) return
  process.stderr.write(`      skipped: ${why}\n`)
  ctx.skip()
}

/** A file of `size` bytes (sparse), attached as a loop device: its /dev path. */
export async function attachLoop(file: string, size: number, content?: Buffer): Promise<string> {
  await fs.writeFile(file, content ?? '')
  await fs.truncate(file, size)
  const r = spawnSync('losetup', ['-f', '--show', file], {encoding: 'utf8'})
  if (r.status !== 0 || r.stdout.trim() === '') throw new Error(`losetup -f --show ${file} failed: ${r.stderr || r.error?.message}`)
  const dev = r.stdout.trim()
  attached.add(dev)
  return dev
}

/** Detach every device this process attached (after hooks); a busy one is retried once. */
export function detachAll(): void {
  for (const dev of attached) {
    let r = spawnSync('losetup', ['-d', dev])
    if (r.status !== 0) {
      spawnSync('umount', [dev])
      r = spawnSync('losetup', ['-d', dev])
    }
    attached.delete(dev)
  }
}

/** `mknod PATH b MAJOR MINOR` for `dev`: the device under another name (a receiver's root). */
export async function deviceNodeAt(dev: string, at: string): Promise<void> {
  const st = await fs.stat(dev)
  const r = spawnSync('mknod', [at, 'b', String(Math.floor(st.rdev / 256) & 0xfff), String(st.rdev & 0xff)], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`mknod ${at} failed: ${r.stderr}`)
}

/** Files vdrep could have left in /dev for `dev` (its state must never be put there). */
export async function leftInDev(dev: string): Promise<string[]> {
  const base = dev.slice('/dev/'.length)
  return (await fs.readdir('/dev')).filter((n) => n.startsWith(`${base}.`))
}

/** Run a command that must succeed; its stdout. */
export function runOrThrow(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error?.message}`)
  return r.stdout
}
