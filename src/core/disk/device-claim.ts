// An exclusive claim on a block device: what a running tracker holds on its source and the
// receiver on a device replica. On Linux, O_EXCL without O_CREAT on a block device claims it
// the way mount, mdraid and LVM do: the open fails with EBUSY while the device is mounted or
// claimed, and while it is held a mount fails with EBUSY. So nothing can write the device
// through a file system behind vdrep's back, and a mounted device is refused with a clear
// error instead of being served or overwritten under the file system.
import fs from 'node:fs/promises'
import {constants} from 'node:fs'
import {UsageError} from '../errors.js'

/** Where the device `rdev` is mounted (from /proc/self/mountinfo), for the message; [] if unknown. */
export async function mountPointsOf(rdev: number): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  // Linux's dev_t: major in bits 8..19 (and 32..), minor in bits 0..7 and 20..31.
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff)
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff)
  const want = `${major}:${minor}`
  const out: string[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    // Fields: id, parent, major:minor, root, mount point (octal escapes for spaces), ...
    if (f[2] === want && f[4] !== undefined) out.push(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
  }
  return out
}

/** The error for a device that is mounted or claimed by another program (EBUSY on an O_EXCL open). */
export async function deviceInUse(devicePath: string, rdev: number, role: 'disk' | 'replica', cause?: unknown): Promise<UsageError> {
  const mounts = await mountPointsOf(rdev)
  const where = mounts.length > 0 ? `it is mounted at ${mounts.join(', ')}` : 'another program holds it exclusively (a mount, LVM, mdraid, another vdrep)'
  return new UsageError('DEVICE_IN_USE', `refusing the block device ${devicePath} as the ${role}: ${where}`, {
    cause,
    hint:
      role === 'disk'
        ? 'unmount it first: while `vdrep track` runs, only its NBD export may write the device'
        : 'unmount it (or stop what holds it) first: vdrep writes a replica only while nothing else can',
  })
}

/**
 * Open `devicePath` (a block device) for reading and writing with an exclusive claim; EBUSY
 * (mounted, claimed) becomes DEVICE_IN_USE. Other errors are thrown as they are.
 */
export async function openDeviceExclusive(devicePath: string, role: 'disk' | 'replica', extraFlags = 0): Promise<fs.FileHandle> {
  try {
    return await fs.open(devicePath, constants.O_RDWR | constants.O_EXCL | extraFlags)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err
    const st = await fs.stat(devicePath).catch(() => undefined)
    throw await deviceInUse(devicePath, st?.rdev ?? -1, role, err)
  }
}
