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
    assert.equal(formatBytes(1024), '1 KB')
    assert.equal(formatBytes(1536), '1.5 KB')
    assert.equal(formatBytes(1 << 20), '1 MB')
    assert.equal(formatBytes(5e9), '4.7 GB')
  })

  it('parses durations to seconds; a bare number is seconds', () => {
    const cases: Array<[string, number]> = [
      ['15m', 900],
      ['1h', 3600],
      ['90s', 90],
      ['300', 300],
      [' 10 ', 10],
      ['1.5h', 5400],
      ['24h', 86400],
      ['1d', 86400],
      ['5 m', 300],
      ['500ms', 1],
    ]
    for (const [input, want] of cases) assert.equal(parseDuration(input, 'rpo'), want, input)
  })

  it('refuses zero, negative and unreadable durations', () => {
    for (const input of ['0', '0s', '-5m', 'abc', '', '   ', 'm', '1ms', '499ms'])
      assert.throws(() => parseDuration(input, '--rpo'), usage('BAD_DURATION'), input)
  })

  it('formats durations', () => {
    assert.equal(formatDuration(1), '1s')
    assert.equal(formatDuration(60), '1m')
    assert.equal(formatDuration(900), '15m')
    assert.equal(formatDuration(3600), '1h')
    assert.equal(formatDuration(86400), '1d')
  })
})
