// The full-sync port's opening exchange, for a full sync and for a compare-only session
// (`verify`, `fullsync --dry-run`): HELLO out, HELLO_OK (or the receiver's ERROR) back.
import type {PsfHeader} from '../psf/header.js'
import {FrameType, PROTOCOL_VERSION} from '../protocol/frame.js'
import type {FrameReader} from '../protocol/frame-reader.js'
import type {FrameWriter} from '../protocol/frame-writer.js'
import {decodeHelloOk, SyncMode, type HelloOk} from '../protocol/messages.js'
import {ProtocolError, TransportError} from '../errors.js'
import {encodeClientHello} from '../protocol/client-hello.js'
import {trace} from '../util/trace.js'

export interface FullsyncHello {
  reader: FrameReader
  writer: FrameWriter
  /** The replica's path as the receiver is asked for it. */
  path: string
  header: PsfHeader
  diskSize: number
  flags: number
  nextCommit: Buffer
  /** Codecs to offer (flag COMPRESS); empty or absent: none. */
  codecs?: number[]
  /** What the receiver's ERROR becomes (a full sync records a refusal in the .psf first; a compare does not). */
  refused: (payload: Buffer) => Error | Promise<Error>
}

export async function exchangeHello(x: FullsyncHello): Promise<HelloOk> {
  const h = x.header
  const offered = (x.codecs?.length ?? 0) > 0
  await x.writer.send(
    FrameType.HELLO,
    encodeClientHello(h, {mode: SyncMode.FULLSYNC, diskSize: x.diskSize, flags: x.flags, codecs: x.codecs, nextCommit: x.nextCommit, path: x.path}),
  )
  trace('fullsync: HELLO sent')
  const first = await x.reader.next()
  trace('fullsync: HELLO answered')
  if (!first) throw new TransportError('RECEIVER_CLOSED', 'the replica host closed the connection during the hello')
  if (first.type === FrameType.ERROR) throw await x.refused(first.payload)
  if (first.type !== FrameType.HELLO_OK) throw new ProtocolError('FRAME_UNEXPECTED', `expected HELLO_OK, got frame type ${first.type}`)
  const ok = decodeHelloOk(first.payload, offered)
  if (ok.version !== PROTOCOL_VERSION)
    throw new ProtocolError('VERSION_MISMATCH', `the receiver speaks protocol version ${ok.version}; this client speaks ${PROTOCOL_VERSION}`, {
      hint: 'install the same vdrep release on both hosts',
    })
  return ok
}
