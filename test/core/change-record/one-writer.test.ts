// Only the change record's module writes the .psf: no other source file calls the PsfFile
// writers (header updates, bitmap and index pages, a new file). The tracker's dirty log writes
// its batches through the store the ChangeRecord hands it.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../src/core')
const WRITERS = /\.(updateHeader|writeBitmap|writeIndexPages|updateIndexBlocks|writeActivityLog)\(|PsfFile\.create\(/
/** The owner, the codec it drives, and the dirty log (its durable bits, its activity log) writing through the owner's store. */
const ALLOWED = new Set([
  'change-record/change-record.ts',
  'change-record/moves.ts',
  'change-record/relayout.ts',
  'psf/psf-file.ts',
  'tracker/dirty-log.ts',
  'tracker/durable-bits.ts',
  'tracker/activity-log.ts',
])

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await fs.readdir(dir, {withFileTypes: true})) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...(await sources(p)))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

describe('change record: one writer module', () => {
  it('no file outside change-record/ (and the codec) calls a .psf writer', async () => {
    const offenders: string[] = []
    for (const f of await sources(SRC)) {
      const rel = path.relative(SRC, f)
      if (ALLOWED.has(rel)) continue
      const lines = (await fs.readFile(f, 'utf8')).split('\n')
      lines.forEach((l, i) => {
        if (WRITERS.test(l) && !l.trimStart().startsWith('//') && !l.trimStart().startsWith('*')) offenders.push(`${rel}:${i + 1}: ${l.trim()}`)
      })
    }
    assert.deepEqual(offenders, [])
  })

  it('the dirty log writes only through the store it is given', async () => {
    const text = await fs.readFile(path.join(SRC, 'tracker/dirty-log.ts'), 'utf8')
    assert.doesNotMatch(text, /psf-file\.js/)
    assert.match(text, /this\.store\.writeBitmap\(/)
  })
})
