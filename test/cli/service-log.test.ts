// The serve/track log: journal field prefixes, and SIGHUP's reopen after a logrotate rename.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {fieldPrefix, ServiceLog, stderrIsJournal} from '../../src/cli/service-log.js'
import {tempDir} from '../helpers/disks.js'

describe('service log', () => {
  it('fields first, quoted only when they need it', () => {
    assert.equal(fieldPrefix({disk: '/srv/r/web.img', uid: 1000, session: 4, seq: 17}), 'disk=/srv/r/web.img uid=1000 session=4 seq=17 ')
    assert.equal(fieldPrefix({disk: '/srv/my disk "a".img'}), 'disk="/srv/my disk \\"a\\".img" ')
    assert.equal(fieldPrefix({disk: undefined, uid: 0}), 'uid=0 ')
    assert.equal(fieldPrefix(undefined), '')
  })

  it('JOURNAL_STREAM counts only when it names stderr', () => {
    assert.equal(stderrIsJournal({}), false)
    assert.equal(stderrIsJournal({JOURNAL_STREAM: '1:2'}), false)
  })

  it('reopen: lines before go to the renamed file, lines after to a new one; none lost', async () => {
    const dir = await tempDir('vdrep-log-')
    const file = path.join(dir, 'serve.log')
    const log = new ServiceLog(file, 'vdrep serve')
    for (let i = 0; i < 100; i++) log.line(`before ${i}`)
    await fs.rename(file, `${file}.1`)
    log.reopen()
    for (let i = 0; i < 100; i++) log.line(`after ${i}`, {seq: i})
    await log.close()
    const old = (await fs.readFile(`${file}.1`, 'utf8')).trim().split('\n')
    const now = (await fs.readFile(file, 'utf8')).trim().split('\n')
    assert.equal(old.length, 100)
    assert.equal(now.length, 100)
    assert.ok(old.every((l, i) => l.endsWith(` before ${i}`)))
    assert.ok(now.every((l, i) => l.endsWith(` seq=${i} after ${i}`)))
    await fs.rm(dir, {recursive: true, force: true})
  })
})
