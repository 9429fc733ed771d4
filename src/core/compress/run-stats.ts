// What a run sender reports (its figures, and auto's measures), and a small helper it shares.
import type {AutoMeasures} from './policy.js'

export interface CompressStats {
  codec: string
  /** Levels used (auto moves between them; 0 is raw). */
  levels: number[]
  /** The level in force at the end (auto: where its measurements settled). */
  finalLevel: number
  /** Compressed runs sent, and the raw bytes they stood for. */
  runs: number
  rawBytes: number
  /** DATA_Z payload bytes for those runs. */
  compressedBytes: number
  /** Raw bytes of pieces that were tried but went raw (did not shrink). */
  incompressibleBytes: number
  /** Raw bytes compressed on the sending thread (the first few MiB, while the workers start, and cheap pieces). */
  inlineBytes: number
  /** Worker time spent compressing (beside the sending, not in its way). */
  compressMs: number
  /** Time the sender waited for a worker's result (the pipeline ran dry). */
  waitMs: number
  /** auto only: the rates it decided by. */
  auto?: AutoMeasures
}

/** `f`, run at most once however often it is called (a write callback and a failed send may both release). */
export function once(f: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    f()
  }
}
