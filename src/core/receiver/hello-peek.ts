// Reading a connection's first frame ahead, without consuming it: the receiver server peeks
// the HELLO to learn which replica the session will write, and locks it before the session
// starts. The bytes read stay in the session's reader.
import {decodeFrameHeader, FRAME_HEADER_SIZE, FrameType} from '../protocol/frame.js'
import type {FrameReader} from '../protocol/frame-reader.js'
import {decodeHello, type Hello} from '../protocol/messages.js'

export interface Peeked {
  /** The bytes peeked (still in the reader, for the session). */
  bytes: Buffer
  /** The decoded HELLO, when the first frame is one and decodes. */
  hello?: Hello
  /** The peer closed (or went idle) before a whole first frame arrived. */
  ended: boolean
}

/** The first frame, read ahead through the session's frame reader: the bytes stay in it for the session to read. */
export async function peekHello(reader: FrameReader): Promise<Peeked> {
  try {
    const head = await reader.peek(FRAME_HEADER_SIZE)
    if (head.length < FRAME_HEADER_SIZE) return {bytes: head, ended: true}
    let length: number
    try {
      const h = decodeFrameHeader(head)
      if (h.type !== FrameType.HELLO) return {bytes: head, ended: false}
      length = h.length
    } catch {
      return {bytes: head, ended: false} // the session refuses it, with its reason
    }
    const all = await reader.peek(FRAME_HEADER_SIZE + length)
    if (all.length < FRAME_HEADER_SIZE + length) return {bytes: all, ended: true}
    let hello: Hello | undefined
    try {
      hello = decodeHello(all.subarray(FRAME_HEADER_SIZE))
    } catch {
      hello = undefined
    }
    return {bytes: all, hello, ended: false}
  } catch (err) {
    if ((err as {code?: string}).code === 'IDLE_TIMEOUT') return {bytes: Buffer.alloc(0), ended: true}
    throw err
  }
}
