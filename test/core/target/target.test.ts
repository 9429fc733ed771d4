// Tests of src/core/target/target.ts: local paths, [user@]host[:port]:/path (IPv6 in
// brackets), and the forms it must refuse.
import assert from 'node:assert/strict'
import path from 'node:path'
import {UsageError} from '../../../src/core/errors.js'
import {formatTarget, parseTarget, type Target} from '../../../src/core/target/target.js'

const bad = (e: unknown) => e instanceof UsageError && e.code === 'BAD_TARGET' && e.exitCode === 2

describe('parseTarget', () => {
  it('reads absolute, relative and colon-free paths as local', () => {
    assert.deepEqual(parseTarget('/srv/replicas/d.img'), {kind: 'local', path: '/srv/replicas/d.img'})
    assert.deepEqual(parseTarget('./r/d.img'), {kind: 'local', path: path.resolve('r/d.img')})
    assert.deepEqual(parseTarget('../d.img'), {kind: 'local', path: path.resolve('../d.img')})
    assert.deepEqual(parseTarget('d.img'), {kind: 'local', path: path.resolve('d.img')})
    assert.deepEqual(parseTarget('/mnt/a:b/d.img'), {kind: 'local', path: '/mnt/a:b/d.img'})
  })

  it('reads SSH targets with and without user and port', () => {
    const cases: Array<[string, Target]> = [
      ['host:/p', {kind: 'ssh', user: undefined, host: 'host', port: undefined, path: '/p'}],
      ['user@host:/p', {kind: 'ssh', user: 'user', host: 'host', port: undefined, path: '/p'}],
      ['host:2222:/p', {kind: 'ssh', user: undefined, host: 'host', port: 2222, path: '/p'}],
      ['backup@replica.example.com:22:/srv/vm/disk 1.img', {kind: 'ssh', user: 'backup', host: 'replica.example.com', port: 22, path: '/srv/vm/disk 1.img'}],
      ['10.0.0.7:/srv/d.img', {kind: 'ssh', user: undefined, host: '10.0.0.7', port: undefined, path: '/srv/d.img'}],
      ['host:/', {kind: 'ssh', user: undefined, host: 'host', port: undefined, path: '/'}],
      ['host:65535:/p', {kind: 'ssh', user: undefined, host: 'host', port: 65535, path: '/p'}],
    ]
    for (const [spec, want] of cases) assert.deepEqual(parseTarget(spec), want, spec)
  })

  it('reads IPv6 hosts in brackets', () => {
    assert.deepEqual(parseTarget('[::1]:/p'), {kind: 'ssh', user: undefined, host: '::1', port: undefined, path: '/p'})
    assert.deepEqual(parseTarget('root@[fe80::1]:2222:/r/d.img'), {kind: 'ssh', user: 'root', host: 'fe80::1', port: 2222, path: '/r/d.img'})
  })

  it('refuses malformed targets with BAD_TARGET', () => {
    const specs = [
      '',
      'host:relative/path',
      'host:22',
      'host::/p',
      ':/p',
      '@host:/p',
      'user@:/p',
      'a b:/p',
      '::1:/p',
      '[::1/p',
      '[zz::1]:/p',
      'host:0:/p',
      'host:65536:/p',
      'host:99999999999999999999:/p',
      'host:/a/../b',
      'host:/..',
      'C:\\disk.img',
      'u@v@host:/p',
    ]
    for (const spec of specs) assert.throws(() => parseTarget(spec), bad, JSON.stringify(spec))
  })

  it('names the bad port and the parent-directory component', () => {
    assert.throws(() => parseTarget('host:70000:/p'), /bad SSH port 70000/)
    assert.throws(() => parseTarget('host:/a/../b'), /contains '\.\.'/)
  })
})

describe('formatTarget', () => {
  it('round-trips what parseTarget reads', () => {
    for (const spec of ['/srv/d.img', 'host:/p', 'user@host:2222:/p', '[::1]:/p', 'root@[fe80::1]:22:/r/d.img']) {
      assert.equal(formatTarget(parseTarget(spec)), spec)
    }
  })
})
