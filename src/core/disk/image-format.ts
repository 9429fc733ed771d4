// Recognise container formats that are not raw disks, so that vdrep refuses them with a
// useful message instead of replicating a qcow2 file as if it were the guest's disk.
export interface ForeignFormat {
  name: string
  hint: string
}

const CONVERT = 'convert it first: `qemu-img convert -O raw <image> <disk.img>`'

export function detectForeignFormat(head: Buffer): ForeignFormat | undefined {
  const ascii = head.subarray(0, 64).toString('latin1')
  if (head.length >= 4 && head.readUInt32BE(0) === 0x514649fb) return {name: 'qcow2', hint: CONVERT}
  if (ascii.startsWith('KDMV')) return {name: 'VMDK (sparse extent)', hint: `use a flat VMDK extent (-flat.vmdk), or ${CONVERT}`}
  if (ascii.startsWith('COWD')) return {name: 'VMDK (ESX sparse)', hint: CONVERT}
  if (/^#\s*Disk DescriptorFile/i.test(ascii))
    return {name: 'VMDK descriptor', hint: 'give the raw extent it names (the -flat.vmdk file) instead of the descriptor'}
  if (ascii.startsWith('vhdxfile')) return {name: 'VHDX', hint: CONVERT}
  if (ascii.startsWith('conectix')) return {name: 'VHD (dynamic)', hint: CONVERT}
  if (head.length >= 68 && head.readUInt32LE(64) === 0xbeda107f) return {name: 'VDI', hint: CONVERT}
  if (ascii.startsWith('QEVM')) return {name: 'qemu saved state', hint: 'this is not a disk image'}
  return undefined
}
