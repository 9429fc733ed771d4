// The transfer bar on a terminal: bytes compared, bytes sent, MiB/s and ETA.
import cliProgress from 'cli-progress'
import type {SyncProgress} from '../core/sync/progress.js'
import {formatBytes} from '../core/util/units.js'

export function createTransferBar(): {update: (p: SyncProgress) => void; stop: () => void} {
  const bar = new cliProgress.SingleBar(
    {
      format: '{phase} [{bar}] {percentage}% | {compared} compared | {sent} sent | {rate}/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  )
  const started = performance.now()
  let running = false
  return {
    update(p) {
      if (p.bytesTotal === 0) return
      const payload = {
        phase: p.phase.padEnd(7),
        compared: formatBytes(p.bytesCompared),
        sent: formatBytes(p.bytesSent),
        rate: formatBytes(p.bytesCompared / Math.max(0.001, (performance.now() - started) / 1000)),
      }
      if (!running) {
        bar.start(p.bytesTotal, p.bytesCompared, payload)
        running = true
      } else bar.update(p.bytesCompared, payload)
    },
    stop() {
      if (running) bar.stop()
    },
  }
}
