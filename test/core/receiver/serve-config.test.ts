// Tests of the connection-cap settings in src/core/receiver/serve-config.ts.
import assert from 'node:assert/strict'

import {DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_UID} from '../../../src/core/receiver/connection-caps.js'
import {loadServeConfig, parseServeConfig} from '../../../src/core/receiver/serve-config.js'

describe('core/receiver/serve-config (connection caps)', function () {
  it('reads maxConnections and maxConnectionsPerUid', () => {
    const s = parseServeConfig('/x.json', '{"root": "/srv", "maxConnections": 10, "maxConnectionsPerUid": 3}')
    assert.equal(s.maxConnections, 10)
    assert.equal(s.maxConnectionsPerUid, 3)
  })

  it('refuses caps that are not whole numbers from 1 to 4096', () => {
    for (const bad of ['0', '-1', '1.5', '"8"', '4097', 'null']) {
      assert.throws(() => parseServeConfig('/x.json', `{"maxConnections": ${bad}}`), /maxConnections must be a whole number/)
      assert.throws(() => parseServeConfig('/x.json', `{"maxConnectionsPerUid": ${bad}}`), /maxConnectionsPerUid must be a whole number/)
    }
  })

  it('defaults when unset; flags win', async () => {
    const d = await loadServeConfig({root: '/srv'})
    assert.equal(d.maxConnections, DEFAULT_MAX_CONNECTIONS)
    assert.equal(d.maxConnectionsPerUid, DEFAULT_MAX_CONNECTIONS_PER_UID)
    const f = await loadServeConfig({root: '/srv', maxConnections: 5, maxConnectionsPerUid: 2})
    assert.deepEqual([f.maxConnections, f.maxConnectionsPerUid], [5, 2])
  })
})
