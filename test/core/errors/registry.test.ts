// The registry of error codes: every code thrown in src/ is in it, doc/protocol.md's
// "Error codes" table is it, and exit codes come from it alone (never from a peer).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {codeFromPeer, ERROR_CODES, EXIT_CODE_TABLE, exitCodeOf, isErrorCode, RemoteError, type ErrorCodeInfo} from '../../../src/core/errors.js'
import {decodeError, encodeError} from '../../../src/core/protocol/messages.js'
import {remoteErrorOf} from '../../../src/core/fullsync/client-replies.js'
import {PROJECT_ROOT} from '../../helpers/cli.js'

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, {withFileTypes: true}).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : []
  })
}

/** The doc's table rows: | `CODE` | 2 USAGE | yes | meaning |. */
export function docErrorCodes(text: string): Array<[string, number, boolean, string]> {
  const start = text.indexOf('\n## Error codes\n')
  assert.ok(start >= 0, 'doc/protocol.md has no "## Error codes" chapter')
  const section = text.slice(start + 1).split(/\n## /)[0]!
  return section
    .split('\n')
    .filter((l) => /^\| `/.test(l))
    .map((l) => {
      const [code, exit, fromReceiver, meaning] = l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim())
      return [code!.replace(/`/g, ''), Number(exit!.split(' ')[0]), fromReceiver === 'yes', meaning!]
    })
}

describe('error code registry', () => {
  it('holds every code a constructor in src/ is given', () => {
    // The type system refuses unregistered literals; this also catches codes built at run time
    // and kept in variables, by reading every quoted SCREAMING_CASE string next to an Error.
    const unknown: string[] = []
    for (const file of sourceFiles(path.join(PROJECT_ROOT, 'src'))) {
      const text = fs.readFileSync(file, 'utf8')
      for (const m of text.matchAll(/(?:Error\(\s*|bad\(\s*|code: |EOF_CODE = )'([A-Z][A-Z0-9_]+)'/g)) {
        const code = m[1]!
        if (/^E[A-Z0-9]+$/.test(code)) continue // an errno, not ours
        if (!isErrorCode(code)) unknown.push(`${path.relative(PROJECT_ROOT, file)}: ${code}`)
      }
    }
    assert.deepEqual(unknown, [])
  })

  it('maps every code to an exit code of the documented table', () => {
    const documented = new Set(EXIT_CODE_TABLE.map(([c]) => c))
    for (const [code, info] of Object.entries(ERROR_CODES) as Array<[string, ErrorCodeInfo]>) {
      assert.ok(documented.has(info.exit), `${code}: exit ${info.exit} is not in EXIT_CODE_TABLE`)
      assert.ok(info.meaning.length > 0 && !info.meaning.includes('|'), `${code}: one line of meaning, no '|'`)
      // errnoOf() tells errnos from our codes by their shape: ours never look like one.
      assert.doesNotMatch(code, /^E[A-Z0-9]+$/)
    }
  })

  it('is the "Error codes" table of doc/protocol.md', () => {
    const doc = docErrorCodes(fs.readFileSync(path.join(PROJECT_ROOT, 'doc/protocol.md'), 'utf8'))
    const reg = (Object.entries(ERROR_CODES) as Array<[string, ErrorCodeInfo]>).map(([c, i]) => [c, i.exit, !i.clientSide, i.meaning])
    assert.deepEqual(doc, reg)
  })

  it('reads a peer code it does not know, or one only this host raises, as REMOTE_ERROR', () => {
    assert.equal(codeFromPeer('REPLICA_FULL', 'replica host'), 'REPLICA_FULL')
    assert.equal(codeFromPeer('NO_SUCH_CODE', 'replica host'), 'REMOTE_ERROR')
    assert.equal(codeFromPeer('toString', 'replica host'), 'REMOTE_ERROR')
    assert.equal(codeFromPeer('HOST_KEY_CHANGED', 'replica host'), 'REMOTE_ERROR')
    assert.equal(codeFromPeer('TRACKER_ERROR', 'tracker'), 'TRACKER_ERROR')
  })
})

describe('an ERROR frame from the replica host', () => {
  const frame = (exitCode: number, code: string) => encodeError({exitCode, code, message: 'no space left for /r/web.img', hint: 'free some'})

  it('exits by its code, through the registry, whatever exit code it carries', () => {
    for (const carried of [0, 1, 8, 130, 65535]) {
      const e = remoteErrorOf(frame(carried, 'REPLICA_FULL'))
      assert.equal(e.code, 'REPLICA_FULL')
      assert.equal(exitCodeOf(e), 9)
      assert.equal(e.message, 'replica host: no space left for /r/web.img')
      assert.equal(e.hint, 'free some')
    }
  })

  it('cannot pick the client exit code with a code of the client host or an unknown code', () => {
    for (const code of ['HOST_KEY_CHANGED', 'SSH_AUTH', 'USAGE', 'NOT_A_CODE', '']) {
      const e = remoteErrorOf(frame(8, code))
      assert.equal(e.code, 'REMOTE_ERROR')
      assert.equal(exitCodeOf(e), 1)
      assert.ok(e instanceof RemoteError && e.peerCode === code)
      assert.match(e.message, new RegExp(`replica host error code "${code}"`))
    }
  })

  it('still carries the exit code the sender maps its code to (the wire stays as it was)', () => {
    assert.deepEqual(decodeError(frame(9, 'REPLICA_FULL')), {exitCode: 9, code: 'REPLICA_FULL', message: 'no space left for /r/web.img', hint: 'free some'})
  })
})
