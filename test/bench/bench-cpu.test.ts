// The bench's CPU accounting: machine-wide busy and stolen CPU-seconds from /proc/stat, and
// the bound they put on a loopback transfer's rate (a run needing C CPU-seconds cannot end
// in under C/N seconds on N CPUs).
import assert from 'node:assert/strict'
import {machineBusySeconds, machineStealSeconds, row, timeRuns} from '../../bench/bench-common.js'
import {cpuContext, SshCase, SSH_SECTION} from '../../bench/ssh-bench.js'

function burn(ms: number): void {
  const end = performance.now() + ms
  let x = 0
  while (performance.now() < end) x += Math.sqrt(x + 1)
  assert.ok(x > 0)
}

describe('bench CPU accounting', () => {
  it('counts the CPU a run burns, machine-wide', () => {
    const a = machineBusySeconds()
    assert.ok(a !== undefined && a > 0, 'reads /proc/stat')
    burn(300)
    const b = machineBusySeconds() as number
    // 300 ms of one busy thread; the clock ticks at 100 Hz and a loaded host may steal some.
    assert.ok(b - a >= 0.1, `busy grew by ${b - a} s`)
    const steal = machineStealSeconds()
    assert.ok(steal !== undefined && steal >= 0)
  })

  it("timeRuns records each run's CPU beside its wall time", async () => {
    const cpu: number[] = []
    const wall = await timeRuns(2, () => burn(150), undefined, cpu)
    assert.equal(wall.length, 2)
    assert.equal(cpu.length, 2)
    const r = row('t', 'burn', wall, 0, undefined, cpu)
    assert.ok(r.cpuSeconds !== undefined && r.cpuSeconds >= 0.05)
  })

  it('bounds the random-disk rate by the CPU it needs on this many CPUs', () => {
    const rnd = {...row(SSH_SECTION, SshCase.RANDOM, [5], 1 << 30), cpuSeconds: 8}
    const s2 = {...row(SSH_SECTION, SshCase.SSH2, [2], 1 << 30), cpuSeconds: 3}
    const lines = cpuContext([rnd, s2], 2)
    // 8 CPU-s on 2 CPUs: at least 4 s, so at best 2 / 4 = 0.5x the bare channel's rate.
    assert.ok(
      lines.some((l) => l.includes('cannot run in under 4.00 s on 2 CPUs') && l.includes('bounded by 0.50x')),
      lines.join('\n'),
    )
    assert.ok(lines.some((l) => l.startsWith(SshCase.SSH2) && l.includes('3.00 CPU-s') && l.includes('1.50 of 2 CPUs busy')))
  })
})
