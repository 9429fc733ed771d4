import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {describeKeyType, fingerprintSha256, hostKeyAlgorithmsFor, keyTypeOf} from '../../../../src/core/transport/ssh/host-key.js'
import {appendKnownHost, hashHostName, hostFieldMatches, KnownHosts, knownHostName} from '../../../../src/core/transport/ssh/known-hosts.js'

const run = promisify(execFile)

// Keys and hashed lines made by OpenSSH's ssh-keygen (-t, -H, -l), not by the code under test.
const ED = 'AAAAC3NzaC1lZDI1NTE5AAAAIM3XkerfCuyhd0pUKGQDAGpGHzYDNTaYCQ9NdGqPg1eE'
const ED_FP = 'SHA256:fM9bfBE3e6z+gFYfH3lst3ToG3NztbPt/oBM/NWrabU'
const EC = 'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJ8gFTfcX+yLAGCLr/YuG5cGtqBN6Agj7IvubfuWPlGAnjvCtqf0p3sxuU8Ov4NmvJ5w3lNzTjOzRGfB2btKP8A='
const EC_FP = 'SHA256:CUIbH7A5R0OEAFninLK+8iOBDi86UtKKBP73SvTQtQw'
// ssh-keygen -H of "replica.example.org <ED>" and "[replica.example.org]:2222 <EC>"
const HASHED_22 = `|1|hvoglCuCKSnamBEeCndYHFlrXz4=|LDmBSYtYBBPiLybuF+ku94p8DOo= ssh-ed25519 ${ED}`
const HASHED_2222 = `|1|1tI8aiNxTjf4tYKy3VwKPiFuEbQ=|gTJH/yU7K9lzRepsCdCeGg88zTE= ecdsa-sha2-nistp256 ${EC}`
// a different ed25519 key
const ED2 = 'AAAAC3NzaC1lZDI1NTE5AAAAIBPSbbk6yPfa3kmixo8qTyWKl3CWqe5sn1FTlj+mTLKx'

const ed = Buffer.from(ED, 'base64')
const ec = Buffer.from(EC, 'base64')
const ed2 = Buffer.from(ED2, 'base64')

describe('host-key', () => {
  it('reads the key type and prints fingerprints as OpenSSH does', () => {
    assert.equal(keyTypeOf(ed), 'ssh-ed25519')
    assert.equal(keyTypeOf(ec), 'ecdsa-sha2-nistp256')
    assert.equal(keyTypeOf(Buffer.from([0, 0, 0, 9, 1])), '')
    assert.equal(fingerprintSha256(ed), ED_FP)
    assert.equal(fingerprintSha256(ec), EC_FP)
    assert.equal(describeKeyType('ecdsa-sha2-nistp384'), 'ECDSA')
  })

  it('offers only the algorithms of known key types, RSA with its SHA-2 forms', () => {
    assert.deepEqual(hostKeyAlgorithmsFor(['ecdsa-sha2-nistp256']), ['ecdsa-sha2-nistp256'])
    assert.deepEqual(hostKeyAlgorithmsFor(['ssh-rsa', 'ssh-ed25519']), ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'])
    assert.equal(hostKeyAlgorithmsFor([]), undefined)
    assert.equal(hostKeyAlgorithmsFor(['ssh-dss']), undefined)
  })
})

describe('known-hosts', () => {
  it('names hosts as OpenSSH does', () => {
    assert.equal(knownHostName('Replica', 22), 'replica')
    assert.equal(knownHostName('replica', 2222), '[replica]:2222')
    assert.equal(knownHostName('::1', 2222), '[::1]:2222')
  })

  it('matches plain patterns, wildcards and negation', () => {
    assert.equal(hostFieldMatches('replica,10.0.0.5', 'replica'), true)
    assert.equal(hostFieldMatches('REPLICA', 'replica'), true)
    assert.equal(hostFieldMatches('*.example.org,!bad.example.org', 'good.example.org'), true)
    assert.equal(hostFieldMatches('*.example.org,!bad.example.org', 'bad.example.org'), false)
    assert.equal(hostFieldMatches('replica', '[replica]:2222'), false)
    assert.equal(hostFieldMatches('[replica]:2222', '[replica]:2222'), true)
    assert.equal(hostFieldMatches('[replica]:2222', '[replica]:22222'), false)
    assert.equal(hostFieldMatches('rep?ica', 'replica'), true)
  })

  it('matches hashed names made by ssh-keygen -H, on port 22 and as [host]:port', () => {
    const kh = KnownHosts.parse(`${HASHED_22}\n${HASHED_2222}\n`)
    assert.equal(kh.check('replica.example.org', ed).status, 'match')
    assert.equal(kh.check('[replica.example.org]:2222', ec).status, 'match')
    assert.equal(kh.check('replica.example.org', ec).status, 'other-type')
    assert.equal(kh.check('[replica.example.org]:2223', ec).status, 'unknown')
    assert.deepEqual(kh.keyTypesFor('[replica.example.org]:2222'), ['ecdsa-sha2-nistp256'])
  })

  it('tells match, changed, other-type and unknown apart', () => {
    const kh = KnownHosts.parse(`# comment\n\nreplica ssh-ed25519 ${ED} root@replica\n[replica]:2222 ecdsa-sha2-nistp256 ${EC}\n`)
    const m = kh.check('replica', ed)
    assert.equal(m.status, 'match')
    assert.equal(m.status === 'match' && m.entry.line, 3)
    const c = kh.check('replica', ed2)
    assert.equal(c.status, 'changed')
    assert.deepEqual(c.status === 'changed' && c.entries.map((e) => e.line), [3])
    assert.equal(kh.check('[replica]:2222', ed).status, 'other-type')
    assert.equal(kh.check('elsewhere', ed).status, 'unknown')
  })

  it('accepts any of several listed keys of one type', () => {
    const kh = KnownHosts.parse(`replica ssh-ed25519 ${ED2}\nreplica ssh-ed25519 ${ED}\n`)
    assert.equal(kh.check('replica', ed).status, 'match')
  })

  it('refuses @revoked keys and does not use @cert-authority lines', () => {
    const kh = KnownHosts.parse(`@revoked * ssh-ed25519 ${ED}\nreplica ssh-ed25519 ${ED}\n@cert-authority *.example.org ssh-ed25519 ${ED2}\n`)
    assert.equal(kh.check('replica', ed).status, 'revoked')
    assert.equal(kh.check('a.example.org', ed2).status, 'unknown')
    assert.deepEqual(kh.keyTypesFor('a.example.org'), [])
  })

  it('skips lines it cannot read and reports them', () => {
    const kh = KnownHosts.parse(`garbage\n@bogus replica ssh-ed25519 ${ED}\nreplica ssh-ed25519 ${EC}\nreplica ssh-ed25519 ${ED}\n`)
    assert.deepEqual(kh.badLines, [1, 2, 3])
    assert.equal(kh.entries.length, 1)
  })

  it('hashes names with HMAC-SHA1 as OpenSSH does', () => {
    const salt = Buffer.from('hvoglCuCKSnamBEeCndYHFlrXz4=', 'base64')
    assert.equal(hashHostName('replica.example.org', salt), HASHED_22.split(' ')[0])
  })

  describe('appending', () => {
    let dir: string
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'vdrep-kh-'))
    })
    after(() => rm(dir, {recursive: true, force: true}))

    it('creates the file and folder, hashes the name, and OpenSSH finds the entry', async () => {
      const file = join(dir, 'sub', 'known_hosts')
      await appendKnownHost(file, '[127.0.0.1]:2222', ed)
      const text = await readFile(file, 'utf8')
      assert.match(text, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 \S+\n$/)
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      assert.equal((await stat(join(dir, 'sub'))).mode & 0o777, 0o700)
      const {stdout} = await run('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', file])
      assert.match(stdout, /ssh-ed25519/)
      assert.equal((await KnownHosts.load(file)).check('[127.0.0.1]:2222', ed).status, 'match')
    })

    it('starts on a new line when the file does not end with one', async () => {
      const file = join(dir, 'kh2')
      await writeFile(file, `replica ssh-ed25519 ${ED}`)
      await appendKnownHost(file, 'other', ec)
      const kh = await KnownHosts.load(file)
      assert.equal(kh.check('replica', ed).status, 'match')
      assert.equal(kh.check('other', ec).status, 'match')
      assert.deepEqual(kh.badLines, [])
    })

    it('loads a missing file as empty', async () => {
      const kh = await KnownHosts.load(join(dir, 'missing'))
      assert.equal(kh.entries.length, 0)
    })
  })
})
