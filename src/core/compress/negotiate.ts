// The client's half of agreeing on compression: what to offer in the HELLO, and what the
// session then uses, from the receiver's answer. Never pretends: a receiver that picks no codec
// (or an older one that does not know the offer) gets raw DATA, and the result says why.
import type {FrameWriter} from '../protocol/frame-writer.js'
import type {Throttle} from '../sync/throttle.js'
import type {Target} from '../target/target.js'
import {codecName, localCodecs} from './codec.js'
import {CompressPool, defaultCompressWorkers} from './compress-pool.js'
import {levelChooser, type CompressSetting} from './policy.js'
import {RunSender, type CompressStats} from './run-sender.js'

export interface CompressOffer {
  /** The codecs to list in the HELLO (empty: offer nothing, flag COMPRESS unset). */
  codecs: number[]
  /** Why nothing is offered, when so. */
  why?: string
}

export function compressOffer(setting: CompressSetting, target: Target): CompressOffer {
  if (setting === 'none') return {codecs: [], why: 'compression is off (--compress none)'}
  // The in-process receiver's bytes never cross a link: compressing them only costs CPU.
  if (target.kind === 'local') return {codecs: [], why: 'a local target has no link to save'}
  const codecs = localCodecs()
  if (codecs.length === 0) return {codecs, why: 'this host has no zstd (the optional zstd-napi addon is not installed)'}
  return {codecs}
}

/** What a sync reports about compression. */
export interface CompressionReport {
  /** The setting in force: auto, none or a level. */
  setting: string
  /** The codec used, or 'none'. */
  codec: string
  /** Why none, when none. */
  why?: string
  stats?: CompressStats
}

/** The run sender for a session, or undefined (raw), with the report's opening. */
export function sessionCompression(
  setting: CompressSetting,
  offer: CompressOffer,
  picked: number | undefined,
  writer: FrameWriter,
  bs: number,
  throttle: Throttle,
): {sender?: RunSender; report: CompressionReport} {
  const base = {setting: String(setting)}
  if (offer.codecs.length === 0) return {report: {...base, codec: 'none', why: offer.why}}
  if (picked === undefined) return {report: {...base, codec: 'none', why: 'the replica host runs a vdrep without compression'}}
  if (picked === 0) return {report: {...base, codec: 'none', why: 'the replica host has no codec in common (no zstd there)'}}
  const sender = new RunSender(
    writer,
    levelChooser(setting === 'none' ? 'auto' : setting, defaultCompressWorkers(), undefined, process.env.VDREP_AUTO_TRACE === '1'),
    bs,
    throttle,
    () => new CompressPool(),
  )
  return {sender, report: {...base, codec: codecName(picked)}}
}
