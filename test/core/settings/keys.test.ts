// The settings table of `vdrep config`: which changes keep the replica (login, port, RPO...)
// and which name another one (host, path); values checked; diffs key by key.
import assert from 'node:assert/strict'
import {replicaOf, settingKey, settingsDiff} from '../../../src/core/settings/keys.js'
import type {ReplicationSettings} from '../../../src/core/psf/settings.js'

const S: ReplicationSettings = {target: 'backup@dr1:2222:/srv/web.img', rpoSeconds: 900, fullsyncPort: 31031, deltaPort: 44046}

describe('settings keys', () => {
  it('a login or SSH port keeps the replica; another host or path is another replica', () => {
    const user = settingKey('ssh-user').set(S, ['root'], '/')
    assert.equal(user.target, 'root@dr1:2222:/srv/web.img')
    const port = settingKey('ssh-port').set(S, ['22'], '/')
    assert.equal(port.target, 'backup@dr1:22:/srv/web.img')
    assert.equal(settingKey('ssh-port').unset?.(S).target, 'backup@dr1:/srv/web.img')
    for (const s of [user, port]) assert.equal(replicaOf(s.target), replicaOf(S.target))
    assert.equal(replicaOf('backup@DR1:/srv/web.img'), replicaOf(S.target), 'host names are case-insensitive')
    assert.notEqual(replicaOf('backup@dr2:2222:/srv/web.img'), replicaOf(S.target))
    assert.notEqual(replicaOf('backup@dr1:2222:/srv/web2.img'), replicaOf(S.target))
    assert.notEqual(replicaOf('/srv/web.img'), replicaOf(S.target))
  })

  it('checks values, and unsets to the default', () => {
    assert.throws(() => settingKey('rpo').set(S, ['4m'], '/'), /outside 5m\.\.24h/)
    assert.throws(() => settingKey('delta-port').set(S, ['0'], '/'), /not a port/)
    assert.throws(() => settingKey('rpo').set(S, ['5m', '6m'], '/'), /takes one value, got 2/)
    assert.throws(() => settingKey('retention').set(S, ['forever'], '/'))
    assert.throws(() => settingKey('hash'), /hash shapes the change record itself/)
    assert.throws(() => settingKey('colour'), /no setting named 'colour'/)
    const capped = settingKey('bandwidth').set(S, ['10M'], '/')
    assert.equal(capped.bwlimitBytesPerSecond, 10 << 20)
    assert.equal(settingKey('bandwidth').set(capped, ['off'], '/').bwlimitBytesPerSecond, undefined)
    const id = settingKey('identity').set(S, ['k1', '/abs/k2'], '/etc/vdrep')
    assert.deepEqual(id.ssh, {identityFiles: ['/etc/vdrep/k1', '/abs/k2']})
    assert.equal(settingKey('identity').unset?.(id).ssh, undefined, 'an empty ssh block goes away')
    assert.deepEqual(settingsDiff(S, {...id, rpoSeconds: 300}), [
      {key: 'identity', from: null, to: '/etc/vdrep/k1, /abs/k2'},
      {key: 'rpo', from: '15m', to: '5m'},
    ])
  })
})
