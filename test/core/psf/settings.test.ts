// src/core/psf/settings.ts: timeoutSeconds (init --timeout) is optional, a whole number of
// seconds from 10 to a day, refused otherwise as a corrupt settings block; a command's own
// --timeout wins over it.
import assert from 'node:assert/strict'
import {decodeSettings, encodeSettings, timeoutMsOf, type ReplicationSettings} from '../../../src/core/psf/settings.js'

const base: ReplicationSettings = {target: 'backup@dr1:/srv/r.img', rpoSeconds: 900, fullsyncPort: 31031, deltaPort: 44046}
const json = (extra: Record<string, unknown>) => Buffer.from(JSON.stringify({...base, ...extra}))

describe('psf settings: timeoutSeconds', () => {
  it('round-trips, and is optional', () => {
    assert.deepEqual(decodeSettings(encodeSettings({...base, timeoutSeconds: 300})), {...base, timeoutSeconds: 300})
    assert.deepEqual(decodeSettings(encodeSettings(base)), base)
  })

  it('refuses a value out of range or not whole', () => {
    for (const v of [0, 9, 86_401, 1.5, -10, '60', null])
      assert.throws(
        () => decodeSettings(json({timeoutSeconds: v})),
        (e: Error & {code?: string}) => e.code === 'PSF_CORRUPT',
        String(v),
      )
  })

  it('a command flag wins; else the setting; else the default (undefined)', () => {
    assert.equal(timeoutMsOf(20_000, {...base, timeoutSeconds: 300}), 20_000)
    assert.equal(timeoutMsOf(undefined, {...base, timeoutSeconds: 300}), 300_000)
    assert.equal(timeoutMsOf(undefined, base), undefined)
  })
})
