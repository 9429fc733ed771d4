import assert from 'node:assert/strict'
import {groupPointArgs} from '../../src/cli/group-point-args.js'
import {UsageError} from '../../src/core/errors.js'

describe('--group on export and test start: root and group sequence', () => {
  const usage = (e: unknown) => e instanceof UsageError && e.code === 'USAGE'

  it('takes --root and a group sequence of digits; without --at, the newest point', () => {
    assert.deepEqual(groupPointArgs(undefined, {root: '/r', at: '12'}), {root: '/r', groupSeq: 12})
    assert.deepEqual(groupPointArgs(undefined, {root: '/r'}), {root: '/r'})
  })

  it('refuses a replica beside --group, a missing --root, and a group sequence that is not plain digits', () => {
    assert.throws(() => groupPointArgs('a.img', {root: '/r'}), usage)
    assert.throws(() => groupPointArgs(undefined, {}), usage)
    for (const at of ['', ' 3', '0x10', '-1', '1.5', 'latest', '2026-12-07', '9999999999999999'])
      assert.throws(() => groupPointArgs(undefined, {root: '/r', at}), usage, at)
  })
})
