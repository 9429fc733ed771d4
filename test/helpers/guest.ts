// A real guest for integration tests: qemu-system-x86_64 (TCG, no KVM needed) booting the
// Debian cloud kernel with a busybox initramfs whose /init runs a program of the test's
// choosing against virtio disks served by `vdrep track` over NBD. Nothing is downloaded
// but Debian packages: the kernel .deb (apt-get download) is unpacked once into a cache
// folder; the initramfs (newc cpio, written here) holds busybox, the virtio modules and
// static programs compiled with gcc -static.
//
// The record writer (ordered records across disks): record n goes to disk n % D at offset
// n * 4096, each written with O_DIRECT | O_SYNC only after the previous one completed. A
// record block is "VDREPREC", n (u64 LE), zeros, then ~n (u64 LE) in its last 8 bytes.
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

const execFileP = promisify(execFile)
export const RECORD_SIZE = 4096

/** Where the unpacked kernel is kept between runs (VDREP_GUEST_CACHE overrides). */
export const GUEST_CACHE = process.env.VDREP_GUEST_CACHE ?? path.join(os.homedir(), '.cache', 'vdrep-guest')
// In dependency order (modinfo -F depends): busybox insmod loads one file, no more.
const MODULES = ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk']

const WRITER_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: writer COUNT DEV...\n"); return 2; }
  long count = atol(argv[1]);
  int ndev = argc - 2, fd[16];
  for (int i = 0; i < ndev && i < 16; i++) {
    fd[i] = open(argv[2 + i], O_WRONLY | O_DIRECT | O_SYNC);
    if (fd[i] < 0) { perror(argv[2 + i]); return 1; }
  }
  void *buf;
  if (posix_memalign(&buf, 4096, 4096)) return 1;
  printf("VDREP-GUEST writing %ld records\n", count); fflush(stdout);
  for (long n = 0; n < count; n++) {
    uint64_t v = (uint64_t)n, inv = ~v;
    memset(buf, 0, 4096);
    memcpy(buf, "VDREPREC", 8);
    memcpy((char *)buf + 8, &v, 8);
    memcpy((char *)buf + 4088, &inv, 8);
    if (pwrite(fd[n % ndev], buf, 4096, (off_t)n * 4096) != 4096) { perror("pwrite"); return 1; }
    if (n % 500 == 0) { printf("VDREP-GUEST record %ld\n", n); fflush(stdout); }
  }
  printf("VDREP-GUEST done %ld\n", count); fflush(stdout);
  return 0;
}
`

const have = (cmd: string) =>
  execFileP('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  )

/** Why a guest cannot run here, or null. The tools come from scripts/test-setup.sh. */
export async function guestUnavailable(): Promise<string | null> {
  for (const t of ['qemu-system-x86_64', 'busybox', 'gcc', 'dpkg-deb']) if (!(await have(t))) return `${t} is missing (scripts/test-setup.sh installs it)`
  const bb = await execFileP('sh', ['-c', 'file -L "$(command -v busybox)" 2>/dev/null || true']).then((r) => r.stdout)
  if (bb && /dynamically linked/.test(bb)) return 'busybox is not the static build (busybox-static)'
  return null
}

/** The cloud kernel's vmlinuz and modules folder, unpacked once into GUEST_CACHE. */
export async function guestKernel(): Promise<{vmlinuz: string; modules: string}> {
  await fs.mkdir(GUEST_CACHE, {recursive: true})
  const found = async () => {
    const boot = await fs.readdir(path.join(GUEST_CACHE, 'root', 'boot')).catch(() => [] as string[])
    const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'))
    if (!vmlinuz) return null
    const version = vmlinuz.slice('vmlinuz-'.length)
    return {vmlinuz: path.join(GUEST_CACHE, 'root', 'boot', vmlinuz), modules: path.join(GUEST_CACHE, 'root', 'lib', 'modules', version)}
  }
  const cached = await found()
  if (cached) return cached
  // The metapackage names the versioned image package; download that one and unpack it.
  const deps = (await execFileP('apt-cache', ['depends', 'linux-image-cloud-amd64'])).stdout
  const pkg = /Depends: (linux-image-[^\s]+-cloud-amd64)/.exec(deps)?.[1]
  if (!pkg) throw new Error(`apt-cache does not name the cloud kernel package:\n${deps}`)
  const dl = await fs.mkdtemp(path.join(GUEST_CACHE, 'dl-'))
  try {
    await execFileP('apt-get', ['download', pkg], {cwd: dl})
    const deb = (await fs.readdir(dl)).find((f) => f.endsWith('.deb'))
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`)
    // Unpacked beside, then renamed into place: a test process that finds root/ finds all of it.
    await execFileP('dpkg-deb', ['-x', path.join(dl, deb), path.join(dl, 'root')])
    await fs.rename(path.join(dl, 'root'), path.join(GUEST_CACHE, 'root')).catch(async (err: NodeJS.ErrnoException) => {
      if (!(err.code === 'ENOTEMPTY' || err.code === 'EEXIST') || !(await found())) throw err // another process unpacked it first
    })
  } finally {
    await fs.rm(dl, {recursive: true, force: true})
  }
  const got = await found()
  if (!got) throw new Error(`no vmlinuz in ${pkg}`)
  return got
}

/** A newc cpio archive entry. */
function cpioEntry(name: string, mode: number, data: Buffer, ino: number): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, '0')
  const nameBuf = Buffer.from(`${name}\0`)
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0]
  const head = Buffer.from(`070701${fields.map(hex).join('')}`)
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4)
  return Buffer.concat([head, nameBuf, pad(head.length + nameBuf.length), data, pad(data.length)])
}

export interface InitramfsFile {
  path: string
  mode: number
  data: Buffer
}

export function writeCpio(files: InitramfsFile[]): Buffer {
  const parts = files.map((f, i) => cpioEntry(f.path, f.mode, f.data, i + 1))
  parts.push(cpioEntry('TRAILER!!!', 0, Buffer.alloc(0), 0))
  return Buffer.concat(parts)
}

/** Compile a C program statically (cached by its text). */
export async function staticProgram(name: string, source: string): Promise<Buffer> {
  const dir = path.join(GUEST_CACHE, 'bin')
  await fs.mkdir(dir, {recursive: true})
  const key = crypto.createHash('sha256').update(source).digest('hex').slice(0, 16)
  const out = path.join(dir, `${name}-${key}`)
  if (!(await fs.stat(out).catch(() => undefined))) {
    // Built under a name of its own, then renamed: another test process may build the same
    // program at the same time, and must never read a half-written one.
    const tmp = `${out}.${process.pid}.tmp`
    await fs.writeFile(`${tmp}.c`, source)
    try {
      await execFileP('gcc', ['-static', '-O2', '-o', tmp, `${tmp}.c`])
      await fs.rename(tmp, out)
    } finally {
      await fs.rm(tmp, {force: true})
      await fs.rm(`${tmp}.c`, {force: true})
    }
  }
  return fs.readFile(out)
}

/**
 * An initramfs whose /init loads the virtio modules, runs `script` (sh, with /bin/writer and
 * the given programs in /bin), then powers off.
 */
export async function buildInitramfs(file: string, script: string, programs: Record<string, string> = {}): Promise<void> {
  const {modules} = await guestKernel()
  const dirs = ['bin', 'dev', 'proc', 'sys', 'lib', 'lib/modules', 'tmp']
  const files: InitramfsFile[] = dirs.map((d) => ({path: d, mode: 0o40755, data: Buffer.alloc(0)}))
  const busybox = await fs.readFile((await execFileP('sh', ['-c', 'command -v busybox'])).stdout.trim())
  files.push({path: 'bin/busybox', mode: 0o100755, data: busybox})
  for (const [name, source] of Object.entries({writer: WRITER_C, ...programs}))
    files.push({path: `bin/${name}`, mode: 0o100755, data: await staticProgram(name, source)})
  for (const m of MODULES) {
    const found = (await execFileP('find', [modules, '-name', `${m}.ko*`])).stdout.trim().split('\n')[0]
    if (!found) throw new Error(`module ${m} is not in ${modules}`)
    if (!found.endsWith('.ko')) throw new Error(`module ${found} is compressed; busybox insmod needs it plain`)
    files.push({path: `lib/modules/${m}.ko`, mode: 0o100644, data: await fs.readFile(found)})
  }
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'export PATH=/bin',
    'mount -t proc proc /proc',
    'mount -t sysfs sys /sys',
    'mount -t devtmpfs dev /dev',
    ...MODULES.map((m) => `insmod /lib/modules/${m}.ko`),
    'for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done',
    'echo VDREP-GUEST up',
    script,
    'echo VDREP-GUEST exit $?',
    'sync',
    'poweroff -f',
  ].join('\n')
  files.push({path: 'init', mode: 0o100755, data: Buffer.from(`${init}\n`)})
  await fs.writeFile(file, writeCpio(files))
}

export interface Guest {
  child: ChildProcess
  /** Everything the guest printed on its serial console. */
  console(): string
  /** Resolves once the console shows `pattern`; rejects if qemu exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
  kill(): Promise<void>
}

/** Boot the guest with one virtio disk per NBD unix socket (`vdrep track --nbd unix:SOCK`). */
export async function bootGuest(initramfs: string, nbdSockets: string[], opts: {memoryMb?: number} = {}): Promise<Guest> {
  const {vmlinuz} = await guestKernel()
  const args = ['-machine', 'accel=tcg', '-m', String(opts.memoryMb ?? 256), '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio']
  args.push('-kernel', vmlinuz, '-initrd', initramfs, '-append', 'console=ttyS0 panic=-1 quiet loglevel=3')
  for (const s of nbdSockets) args.push('-drive', `file=nbd:unix:${s},format=raw,if=virtio,cache=none`)
  const child = spawn('qemu-system-x86_64', args, {stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  const waiters: Array<() => void> = []
  const onData = (d: Buffer) => {
    out += d.toString()
    for (const w of waiters.splice(0)) w()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  child.on('close', () => {
    for (const w of waiters.splice(0)) w()
  })
  return {
    child,
    console: () => out,
    async waitFor(pattern, timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs
      while (!pattern.test(out)) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the guest exited before ${pattern}:\n${out}`)
        if (Date.now() > end) throw new Error(`the guest did not print ${pattern} in ${timeoutMs} ms:\n${out.slice(-4000)}`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 200)
        })
      }
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

/** The valid record numbers found in `disks[i]` (record n lives in disk n % D at n * 4096), sorted. */
export async function readRecords(disks: string[]): Promise<number[]> {
  const found: number[] = []
  for (let d = 0; d < disks.length; d++) {
    const buf = await fs.readFile(disks[d])
    for (let n = d; (n + 1) * RECORD_SIZE <= buf.length; n += disks.length) {
      const at = n * RECORD_SIZE
      if (buf.toString('latin1', at, at + 8) !== 'VDREPREC') continue
      const v = buf.readBigUInt64LE(at + 8)
      if (v === BigInt(n) && buf.readBigUInt64LE(at + RECORD_SIZE - 8) === (~v & 0xffffffffffffffffn)) found.push(n)
    }
  }
  return found.sort((a, b) => a - b)
}

/** The first record missing below the highest one found (a gap: n+1 without n), or null when the records are {0..k}. */
export function firstGap(records: number[]): {missing: number; highest: number} | null {
  for (let i = 0; i < records.length; i++) if (records[i] !== i) return {missing: i, highest: records.at(-1) as number}
  return null
}
