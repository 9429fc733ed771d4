// The few ssh2 failures vdrep can only recognise by their text: the messages below are made
// by the installed ssh2 itself, so a reworded release fails here.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import {createRequire} from 'node:module'
import os from 'node:os'
import path from 'node:path'
import ssh2 from 'ssh2'
import {isEncryptedKey, isNoCommonCipher, isNoCommonHostKey, isUnsupportedAlgorithm} from '../../../../src/core/transport/ssh/ssh2-error-text.js'

function thrownBy(f: () => unknown): unknown {
  try {
    f()
  } catch (err) {
    return err
  }
  assert.fail('expected a throw')
}

describe('ssh2 error text', () => {
  it('recognises ssh2 refusing an algorithm setting', () => {
    const err = thrownBy(() => new ssh2.Client().connect({host: '127.0.0.1', port: 1, algorithms: {cipher: ['no-such-cipher' as never]}}))
    assert.equal(isUnsupportedAlgorithm(err), true, String(err))
    assert.equal(isUnsupportedAlgorithm(new Error('connect ECONNREFUSED 127.0.0.1:1')), false)
  })

  it('recognises an encrypted identity file', () => {
    // An OpenSSH key with a passphrase, made by ssh-keygen as a user would.
    let pem: string
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdrep-key-'))
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', path.join(dir, 'id')])
      pem = fs.readFileSync(path.join(dir, 'id'), 'utf8')
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
    const parsed = ssh2.utils.parseKey(pem)
    assert.ok(parsed instanceof Error, 'an encrypted key without a passphrase does not parse')
    assert.equal(isEncryptedKey(parsed), true, parsed.message)
    const plain = ssh2.utils.parseKey('not a key')
    assert.ok(plain instanceof Error)
    assert.equal(isEncryptedKey(plain), false, plain.message)
  })

  it('recognises the handshake messages of no common host key or cipher', () => {
    // Made inside a live handshake; checked here against the installed ssh2's own source.
    const kex = fs.readFileSync(path.join(path.dirname(createRequire(import.meta.url).resolve('ssh2')), 'protocol', 'kex.js'), 'utf8')
    for (const text of [
      'Handshake failed: no matching host key format',
      'Handshake failed: no matching C->S cipher',
      'Handshake failed: no matching S->C cipher',
    ]) {
      assert.ok(kex.includes(`'${text}'`), `ssh2's kex.js no longer says '${text}'`)
    }
    assert.equal(isNoCommonHostKey(new Error('Handshake failed: no matching host key format')), true)
    assert.equal(isNoCommonCipher(new Error('Handshake failed: no matching C->S cipher')), true)
    assert.equal(isNoCommonCipher(new Error('Handshake failed: no matching S->C cipher')), true)
    assert.equal(isNoCommonHostKey(new Error('Handshake failed: no matching key exchange algorithm')), false)
    assert.equal(isNoCommonCipher(new Error('Handshake failed: no matching C->S MAC')), false)
  })
})
