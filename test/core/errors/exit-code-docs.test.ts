// The exit-code table is written three times: src/core/errors/exit-codes.ts, README.md
// ("## Exit codes") and man/vdrep.1 (EXIT STATUS). This keeps them identical.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {EXIT_CODE_TABLE, ExitCode} from '../../../src/core/errors.js'
import {PROJECT_ROOT as root} from '../../helpers/cli.js'

type Row = [number, string, string]

/** The markdown table under "## Exit codes": `| code | name | meaning |`. */
export function readmeExitCodes(text: string): Row[] {
  const start = text.indexOf('\n## Exit codes\n')
  assert.ok(start >= 0, 'README.md has no "## Exit codes" section')
  const section = text.slice(start + 1).split(/\n## /)[0]!
  const rows = section.split('\n').filter((l) => /^\|\s*\d+\s*\|/.test(l))
  return rows.map((l) => {
    const cells = l
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim())
    return [Number(cells[0]), cells[1]!, cells[2]!]
  })
}

/** The roff list under `.SH EXIT STATUS`: `.TP`, `.BR <code> " <NAME>"`, then the meaning. */
export function manExitCodes(text: string): Row[] {
  const start = text.indexOf('.SH EXIT STATUS\n')
  assert.ok(start >= 0, 'man/vdrep.1 has no EXIT STATUS section')
  const lines = text.slice(start).split('\n').slice(1)
  const rows: Row[] = []
  for (let i = 0; i < lines.length; i++) {
    if (/^\.(SH|PP)\b/.test(lines[i]!)) break
    const m = /^\.BR (\d+) " (\w+)"$/.exec(lines[i]!)
    if (m) rows.push([Number(m[1]), m[2]!, unroff(lines[i + 1] ?? '')])
  }
  return rows
}

const unroff = (s: string): string => s.replace(/\\-/g, '-').replace(/\\\(em/g, '—')

describe('exit-code table', () => {
  const table = EXIT_CODE_TABLE.map(([c, n, m]) => [c, n, m] as Row)

  it('in src matches ExitCode, one row per code', () => {
    assert.deepEqual(Object.fromEntries(table.map(([c, n]) => [n, c])), {...ExitCode})
  })

  it('in README.md is the one in src', () => {
    assert.deepEqual(readmeExitCodes(fs.readFileSync(path.join(root, 'README.md'), 'utf8')), table)
  })

  it('in man/vdrep.1 is the one in src', () => {
    assert.deepEqual(manExitCodes(fs.readFileSync(path.join(root, 'man/vdrep.1'), 'utf8')), table)
  })

  it('the parsers see a changed row (they are not vacuous)', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8').replace('| 9 | REPLICA_FULL |', '| 9 | REPLICA_FILLED |')
    assert.notDeepEqual(readmeExitCodes(readme), table)
    const man = fs.readFileSync(path.join(root, 'man/vdrep.1'), 'utf8').replace('status \\-\\-check: a disk', 'status \\-\\-check: one disk')
    assert.notDeepEqual(manExitCodes(man), table)
  })
})
