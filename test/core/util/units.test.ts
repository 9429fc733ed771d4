// Tests of src/core/util/units.ts: sizes and durations as users type them, and refusals.
import assert from 'node:assert/strict'
import {UsageError} from '../../../src/core/errors.js'
import {formatBytes, formatDuration, parseDuration, parseSize} from '../../../src/core/util/units.js'

const usage = (code: string) => (e: unknown) => e instanceof UsageError && e.code === code && e.exitCode === 2 && typeof e.hint === 'string'

describe('units', () => {
  it('parses sizes with binary suffixes, any case, with or without iB/B', () => {
    const cases: Array<[string, number]> = [
      ['65536', 65536],
      ['0', 0],
      ['64k', 65536],
      ['64K', 65536],
      ['64KiB', 65536],
      ['64kb', 65536],
      ['1M', 1 << 20],
      ['1m', 1 << 20],
      ['4 MiB', 4 << 20],
      ['1G', 2 ** 30],
      ['1 G', 2 ** 30],
      ['1T', 2 ** 40],
      ['1.5k', 1536],
      [' 8k ', 8192],
      ['1.5', 1],
    ]
    for (const [input, want] of cases) assert.equal(parseSize(input, 'block size'), want, input)
  })

  it('refuses what is not a size, naming the flag and the input', () => {
    for (const input of ['', 'abc', '-1', 'k', '1P', '1e3', '64 kk', '0x10']) {
      assert.throws(() => parseSize(input, '--block-size'), usage('BAD_SIZE'), input)
    }
    assert.throws(() => parseSize('big', '--block-size'), /--block-size: cannot read 'big' as a size/)
  })

  it('formats sizes', () => {
    assert.equal(formatBytes(0), '0 B')
    assert.equal(formatBytes(1023), '1023 B')
    assert.equal(formatBytes(1024), '1 KiB')
    assert.equal(formatBytes(1536), '1.5 KiB')
    assert.equal(formatBytes(1 << 20), '1 MiB')
    assert.equal(formatBytes(512 << 20), '512 MiB')
    assert.equal(formatBytes(5e9), '4.7 GiB')
    assert.equal(formatBytes(4 * 2 ** 40), '4 TiB')
  })

  it('parses durations to seconds, compound ones too; a unit is required', () => {
    const cases: Array<[string, number]> = [
      ['15m', 900],
      ['1h', 3600],
      ['90s', 90],
      [' 10s ', 10],
      ['1h30m', 5400],
      ['1d 12h', 129600],
      ['1H30M', 5400],
      ['2w', 1209600],
      ['1.5h', 5400],
      ['24h', 86400],
      ['1d', 86400],
      ['5 m', 300],
      ['500ms', 1],
    ]
    for (const [input, want] of cases) assert.equal(parseDuration(input, 'rpo'), want, input)
  })

  it('refuses zero, negative and unreadable durations', () => {
    for (const input of ['0', '0s', '-5m', 'abc', '', '   ', 'm', '1ms', '499ms', '15', '300', '1h30', 'h1', '1h-30m', '1y'])
      assert.throws(() => parseDuration(input, '--rpo'), usage('BAD_DURATION'), input)
    assert.throws(() => parseDuration('15', '--rpo'), /--rpo: cannot read '15' as a duration \(a number needs a unit\)/)
  })

  it('formats durations', () => {
    assert.equal(formatDuration(1), '1s')
    assert.equal(formatDuration(60), '1m')
    assert.equal(formatDuration(900), '15m')
    assert.equal(formatDuration(3600), '1h')
    assert.equal(formatDuration(86400), '1d')
    assert.equal(formatDuration(0), '0s')
    assert.equal(formatDuration(90), '1m30s')
    assert.equal(formatDuration(5400), '1h30m')
    assert.equal(formatDuration(90061), '1d1h')
    assert.equal(formatDuration(86405), '1d')
    for (const s of [60, 90, 900, 5400, 86400, 129600]) assert.equal(parseDuration(formatDuration(s), 'x'), s, `${s} round-trips`)
  })
})
