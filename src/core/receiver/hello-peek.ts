// Reading a connection's first frame ahead, without consuming it: the receiver server peeks
// the HELLO to learn which replica the session will write, and locks it before the session
// starts. The bytes read stay with the session (in the reader, or handed over as `bytes`).
import type net from 'node:net'
import {decodeFrameHeader, FRAME_HEADER_SIZE, FrameType} from '../protocol/frame.js'
import type {SocketFrameReader} from '../protocol/socket-frame-reader.js'
import {decodeHello, type Hello} from '../protocol/messages.js'

export interface Peeked {
  /** Every byte read, handed to the session. */
  bytes: Buffer
  /** The decoded HELLO, when the first frame is one and decodes. */
  hello?: Hello
  /** The peer closed (or went idle) before a whole first frame arrived. */
  ended: boolean
}

/** As peekHello, through a SocketFrameReader: the bytes stay in it for the session to read. */
export async function peekHelloFrom(reader: SocketFrameReader): Promise<Peeked> {
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

/**
 * Read the first frame ahead, without consuming it for the session: stops at the end of
 * the first frame (or at a header that does not decode, which the session will refuse).
 * Leaves the socket paused.
 */
export function peekHello(socket: net.Socket, idleMs: number): Promise<Peeked> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let have = 0
    let need = FRAME_HEADER_SIZE
    let headerRead = false
    let timer: NodeJS.Timeout | undefined
    const finish = (p: Omit<Peeked, 'bytes'>) => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      if (timer) clearTimeout(timer)
      socket.pause()
      resolve({bytes: Buffer.concat(chunks), ...p})
    }
    const onEnd = () => finish({ended: true})
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      have += chunk.length
      if (idleMs > 0) timer?.refresh()
      if (have < need) return
      const all = Buffer.concat(chunks)
      if (!headerRead) {
        try {
          const h = decodeFrameHeader(all.subarray(0, FRAME_HEADER_SIZE))
          if (h.type !== FrameType.HELLO) return finish({ended: false})
          need = FRAME_HEADER_SIZE + h.length
          headerRead = true
        } catch {
          return finish({ended: false})
        }
        if (have < need) return
      }
      let hello: Hello | undefined
      try {
        hello = decodeHello(all.subarray(FRAME_HEADER_SIZE, need))
      } catch {
        hello = undefined
      }
      finish({hello, ended: false})
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
    if (idleMs > 0) timer = setTimeout(onEnd, idleMs)
  })
}
