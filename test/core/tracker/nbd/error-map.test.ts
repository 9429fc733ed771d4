import assert from 'node:assert/strict'
import {DiskIoError, ReplicaFullError} from '../../../../src/core/errors.js'
import {nbdErrorOf} from '../../../../src/core/tracker/nbd/error-map.js'

const errno = (code: string): Error => Object.assign(new Error(code), {code})

describe('nbd error map', () => {
  const cases: Array<[string, unknown, number]> = [
    ['EIO', errno('EIO'), 5],
    ['ENOSPC', errno('ENOSPC'), 28],
    ['EDQUOT as ENOSPC', errno('EDQUOT'), 28],
    ['EFBIG as ENOSPC', errno('EFBIG'), 28],
    ['EROFS as EPERM', errno('EROFS'), 1],
    ['EACCES as EPERM', errno('EACCES'), 1],
    ['EINVAL', errno('EINVAL'), 22],
    ['ENOMEM', errno('ENOMEM'), 12],
    ['EOVERFLOW', errno('EOVERFLOW'), 75],
    ['ESHUTDOWN', errno('ESHUTDOWN'), 108],
    ['an unknown errno as EIO', errno('EBADF'), 5],
    ['a plain Error as EIO', new Error('boom'), 5],
    ['a non-error as EIO', 'boom', 5],
    ['null as EIO', null, 5],
    ['a DiskIoError caused by ENOSPC', new DiskIoError('write failed', {cause: errno('ENOSPC')}), 28],
    ['a wrapped ReplicaFullError', new DiskIoError('zero failed', {cause: new ReplicaFullError('full', {cause: errno('EDQUOT')})}), 28],
  ]
  for (const [what, err, code] of cases) {
    it(`maps ${what} to ${code}`, () => assert.equal(nbdErrorOf(err), code))
  }
})
