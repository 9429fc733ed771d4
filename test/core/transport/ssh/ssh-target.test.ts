import assert from 'node:assert/strict'
import {UsageError} from '../../../../src/core/errors.js'
import {formatSshTarget, isSshTarget, parseSshTarget} from '../../../../src/core/transport/ssh/ssh-target.js'

describe('ssh-target', () => {
  const good: Array<[string, ReturnType<typeof parseSshTarget>]> = [
    ['replica:/srv/vm1.img', {host: 'replica', port: undefined, path: '/srv/vm1.img'}],
    ['root@replica:/srv/vm1.img', {user: 'root', host: 'replica', port: undefined, path: '/srv/vm1.img'}],
    ['root@replica.example.org:2222:/srv/vm1.img', {user: 'root', host: 'replica.example.org', port: 2222, path: '/srv/vm1.img'}],
    ['10.0.0.5:/a', {host: '10.0.0.5', port: undefined, path: '/a'}],
    ['[::1]:/a', {host: '::1', port: undefined, path: '/a'}],
    ['admin@[fd00::5]:22022:/srv/replicas/vm 1.img', {user: 'admin', host: 'fd00::5', port: 22022, path: '/srv/replicas/vm 1.img'}],
    ['[fe80::1%eth0]:/a', {host: 'fe80::1%eth0', port: undefined, path: '/a'}],
    ['host:/path:with:colons', {host: 'host', port: undefined, path: '/path:with:colons'}],
    ['host:/weird@path', {host: 'host', port: undefined, path: '/weird@path'}],
    ['my_host-1:65535:/x', {host: 'my_host-1', port: 65535, path: '/x'}],
  ]
  for (const [text, want] of good) {
    it(`parses ${text}`, () => {
      assert.deepEqual(parseSshTarget(text), want)
    })
  }

  const bad: Array<[string, RegExp]> = [
    ['replica', /no ':' after the host/],
    ['replica:', /no path/],
    ['replica:relative/path', /not absolute/],
    ['replica:2222:', /no path/],
    ['replica:0:/a', /port 0 is not between 1 and 65535/],
    ['replica:65536:/a', /port 65536/],
    ['@replica:/a', /empty user name/],
    ['-oProxyCommand=evil:/a', /not a host name/],
    ['-o@replica:/a', /starts with '-'/],
    ['[nothost]:/a', /not an IPv6 address/],
    ['[::1:/a', /does not read/],
    ['::1:/a', /does not read/],
    ['a b:/x', /does not read/],
    ['host:/a\0b', /NUL/],
    ['', /no ':'/],
  ]
  for (const [text, re] of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseSshTarget(text),
        (err: unknown) => err instanceof UsageError && err.code === 'BAD_TARGET' && re.test(err.message) && err.exitCode === 2,
      )
    })
  }

  it('tells remote targets from local paths', () => {
    assert.equal(isSshTarget('host:/a'), true)
    assert.equal(isSshTarget('root@[::1]:/a'), true)
    assert.equal(isSshTarget('[::1]:/a'), true)
    assert.equal(isSshTarget('/mnt/share/vm1.img'), false)
    assert.equal(isSshTarget('./dir:with:colon/x.img'), false)
    assert.equal(isSshTarget('relative.img'), false)
  })

  it('formats a target back', () => {
    for (const text of ['root@replica:2222:/a', '[::1]:/a', 'u@[fd00::5]:22:/x y', 'h:/p']) {
      assert.equal(formatSshTarget(parseSshTarget(text)), text)
    }
  })
})
