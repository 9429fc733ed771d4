import assert from 'node:assert/strict'
import {elideMiddle, fitTable} from '../../src/cli/fit-table.js'

describe('fitTable: the status table fitted to a terminal', () => {
  const head = ['DISK', 'TARGET', 'STATE']
  const rows = [
    ['/srv/vms/production/web-frontend-01.img', 'backup@dr1:/srv/replicas/production/web-frontend-01.img', 'OK'],
    ['/vm/a.img', '/mnt/r/a.img', 'RPO violation'],
  ]

  it('without a width nothing is cut (pipes and scripts get whole paths)', () => {
    const out = fitTable(head, rows, {elastic: [0, 1]})
    assert.ok(out[1].includes(rows[0][1]))
    assert.ok(out[1].includes(rows[0][0]))
  })

  it('at 80 columns every line fits; paths keep their start and file name; short ones are whole', () => {
    const out = fitTable(head, rows, {columns: 80, elastic: [0, 1]})
    for (const l of out) assert.ok(l.trimEnd().length <= 80, `${l.length}: ${l}`)
    assert.match(out[1], /^\/srv\/vms.*…[^ ]*frontend-01\.img /)
    assert.match(out[1], /backup@dr1:[^ ]*…[^ ]*frontend-01\.img /)
    assert.ok(out[2].includes('/vm/a.img') && out[2].includes('/mnt/r/a.img'))
    assert.match(out[0], /^DISK +TARGET +STATE$/)
  })

  it('too narrow for the floor: columns stop at it (the terminal wraps), nothing throws', () => {
    const out = fitTable(head, rows, {columns: 10, elastic: [0, 1], minWidth: 12})
    assert.equal(out[1].split('  ')[0].length, 12)
  })

  it('elideMiddle keeps the length asked for', () => {
    for (let max = 1; max < 20; max++) assert.equal(elideMiddle('/a/very/long/path/to/disk.img', max).length, max)
    assert.equal(elideMiddle('short', 10), 'short')
  })
})
