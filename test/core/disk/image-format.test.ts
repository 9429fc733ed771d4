// Tests of src/core/disk/image-format.ts: container formats recognised from hand-written
// magics, raw data and short heads left alone.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {detectForeignFormat} from '../../../src/core/disk/image-format.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const head = (prefix: Buffer, at = 0) => {
  const b = Buffer.alloc(512)
  prefix.copy(b, at)
  return b
}

describe('detectForeignFormat', () => {
  const cases: Array<[string, Buffer, string]> = [
    ['qcow2 v3', head(hex('514649fb 00000003')), 'qcow2'],
    ['qcow2 v2', head(hex('514649fb 00000002')), 'qcow2'],
    ['VMDK sparse extent', head(hex('4b444d56 01000000 03000000')), 'VMDK (sparse extent)'],
    ['VMDK ESX sparse', head(hex('434f5744 01000000')), 'VMDK (ESX sparse)'],
    ['VMDK descriptor', head(Buffer.from('# Disk DescriptorFile\nversion=1\nCID=fffffffe\n')), 'VMDK descriptor'],
    ['VMDK descriptor, other spacing and case', head(Buffer.from('#disk descriptorfile\n')), 'VMDK descriptor'],
    ['VHDX', head(Buffer.from('vhdxfile')), 'VHDX'],
    ['VHD', head(Buffer.from('conectix')), 'VHD (dynamic)'],
    ['VDI', head(hex('7f10dabe'), 64), 'VDI'],
    ['qemu saved state', head(Buffer.from('QEVM')), 'qemu saved state'],
  ]
  for (const [what, bytes, name] of cases) {
    it(`recognises ${what}`, () => {
      const f = detectForeignFormat(bytes)
      assert.equal(f?.name, name)
      assert.ok(f.hint.length > 0)
    })
  }

  it('says how to convert a qcow2 and which extent a descriptor names', () => {
    assert.match(detectForeignFormat(head(hex('514649fb')))?.hint ?? '', /qemu-img convert -O raw/)
    assert.match(detectForeignFormat(head(Buffer.from('# Disk DescriptorFile')))?.hint ?? '', /-flat\.vmdk/)
  })

  it('leaves raw disks alone: zeros, an MBR, a magic not at offset 0', () => {
    assert.equal(detectForeignFormat(Buffer.alloc(512)), undefined)
    const mbr = Buffer.alloc(512)
    mbr[510] = 0x55
    mbr[511] = 0xaa
    assert.equal(detectForeignFormat(mbr), undefined)
    assert.equal(detectForeignFormat(head(hex('514649fb'), 1)), undefined)
    assert.equal(detectForeignFormat(head(Buffer.from('KDMV'), 512 - 4)), undefined)
    assert.equal(detectForeignFormat(head(hex('7f10dabe'), 60)), undefined)
  })

  it('handles heads shorter than any magic', () => {
    for (let n = 0; n < 4; n++) assert.equal(detectForeignFormat(hex('514649fb').subarray(0, n)), undefined)
    assert.equal(detectForeignFormat(Buffer.concat([Buffer.alloc(64), hex('7f10da')])), undefined)
    assert.equal(detectForeignFormat(hex('514649fb'))?.name, 'qcow2')
  })

  it('never throws on any head', () => {
    fc.assert(fc.property(fc.uint8Array({maxLength: 128}), (b) => void detectForeignFormat(Buffer.from(b))))
  })
})
