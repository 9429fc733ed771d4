// Fixed newstyle negotiation, server side: greeting, client flags, then option haggling
// until NBD_OPT_GO / NBD_OPT_EXPORT_NAME picks an export, the client aborts, or it breaks
// a MUST (bad magic, unknown client flags, oversized option, too many options), which
// throws ProtocolError and the caller drops the connection.

import type {Duplex} from 'node:stream'
import {ProtocolError} from '../../errors.js'
import type {NbdBackend} from './backend.js'
import * as C from './constants.js'
import {Cursor, OptionDataError} from './cursor.js'
import type {SocketReader} from '../../transport/socket-reader.js'

export interface HandshakeConfig {
  /** The export a client name selects ('' is the default export), if any. */
  findExport(name: string): NbdBackend | undefined
  /** Names listed by NBD_OPT_LIST. */
  exportNames(): string[]
  /** Transmission flags sent for an export (HAS_FLAGS included). */
  transmissionFlags: number
  /** Advertised maximum block size; also the server's payload cap. */
  maxPayload: number
  /** Called with a short reason whenever an option is refused. */
  onRefuse?: (reason: string) => void
}

export interface Negotiated {
  backend: NbdBackend
  /** NBD_OPT_STRUCTURED_REPLY was acknowledged. */
  structured: boolean
  /** base:allocation was selected for this export: NBD_CMD_BLOCK_STATUS is allowed. */
  blockStatus: boolean
  /** How the export was chosen. */
  via: 'go' | 'export-name'
}

/** The 18-byte greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export function encodeGreeting(): Buffer {
  const b = Buffer.alloc(18)
  b.writeBigUInt64BE(C.NBD_INIT_MAGIC, 0)
  b.writeBigUInt64BE(C.NBD_OPTS_MAGIC, 8)
  b.writeUInt16BE(C.NBD_FLAG_FIXED_NEWSTYLE | C.NBD_FLAG_NO_ZEROES, 16)
  return b
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(C.OPTION_REPLY_HEADER_SIZE + data.length)
  b.writeBigUInt64BE(C.NBD_REP_MAGIC, 0)
  b.writeUInt32BE(option, 8)
  b.writeUInt32BE(type, 12)
  b.writeUInt32BE(data.length, 16)
  data.copy(b, C.OPTION_REPLY_HEADER_SIZE)
  return b
}

function u32Prefixed(id: number, text: string): Buffer {
  const s = Buffer.from(text, 'utf8')
  const b = Buffer.alloc(4 + s.length)
  b.writeUInt32BE(id, 0)
  s.copy(b, 4)
  return b
}

function infoExport(size: number, flags: number): Buffer {
  const b = Buffer.alloc(12)
  b.writeUInt16BE(C.NBD_INFO_EXPORT, 0)
  b.writeBigUInt64BE(BigInt(size), 2)
  b.writeUInt16BE(flags, 10)
  return b
}

function infoBlockSize(max: number): Buffer {
  const b = Buffer.alloc(14)
  b.writeUInt16BE(C.NBD_INFO_BLOCK_SIZE, 0)
  b.writeUInt32BE(C.MIN_BLOCK_SIZE, 2)
  b.writeUInt32BE(C.PREFERRED_BLOCK_SIZE, 6)
  b.writeUInt32BE(max, 10)
  return b
}

function infoName(name: string): Buffer {
  const s = Buffer.from(name, 'utf8')
  const b = Buffer.alloc(2 + s.length)
  b.writeUInt16BE(C.NBD_INFO_NAME, 0)
  s.copy(b, 2)
  return b
}

/** Run the handshake. Resolves to the chosen export, or null after NBD_OPT_ABORT. */
export async function negotiate(socket: Duplex, reader: SocketReader, cfg: HandshakeConfig): Promise<Negotiated | null> {
  socket.write(encodeGreeting())
  const clientFlags = (await reader.read(4)).readUInt32BE(0)
  if ((clientFlags & ~C.KNOWN_CLIENT_FLAGS) !== 0) {
    throw new ProtocolError('NBD_CLIENT_FLAGS', `the client sent unknown handshake flags 0x${clientFlags.toString(16)}`)
  }
  const noZeroes = (clientFlags & C.NBD_FLAG_C_NO_ZEROES) !== 0
  let structured = false
  let metaFor: NbdBackend | null = null // export base:allocation was selected for

  const reply = (option: number, type: number, data?: Buffer): void => {
    socket.write(encodeOptionReply(option, type, data))
  }
  const refuse = (option: number, type: number, message: string): void => {
    cfg.onRefuse?.(message)
    reply(option, type, Buffer.from(message, 'utf8'))
  }

  for (let count = 0; ; count++) {
    if (count >= C.MAX_OPTIONS) {
      throw new ProtocolError('NBD_TOO_MANY_OPTIONS', `the client sent more than ${C.MAX_OPTIONS} options without choosing an export`)
    }
    const header = await reader.read(C.OPTION_HEADER_SIZE)
    const magic = header.readBigUInt64BE(0)
    if (magic !== C.NBD_OPTS_MAGIC) {
      throw new ProtocolError('NBD_BAD_MAGIC', `bad option magic 0x${magic.toString(16)} (expected IHAVEOPT)`)
    }
    const option = header.readUInt32BE(8)
    const length = header.readUInt32BE(12)
    if (length > C.MAX_OPTION_LENGTH) {
      throw new ProtocolError('NBD_OPTION_TOO_LONG', `option ${option} carries ${length} bytes, over the ${C.MAX_OPTION_LENGTH}-byte limit`)
    }
    const data = await reader.read(length)

    if (option === C.NBD_OPT_EXPORT_NAME) {
      // No way to answer with an error: an unusable name ends the session.
      let name: string
      try {
        const c = new Cursor(data)
        name = c.string(length, 'export name')
      } catch (err) {
        throw new ProtocolError('NBD_BAD_EXPORT_NAME', `NBD_OPT_EXPORT_NAME: ${(err as Error).message}`)
      }
      const backend = cfg.findExport(name)
      if (!backend) throw new ProtocolError('NBD_UNKNOWN_EXPORT', `the client asked for unknown export "${name}"`)
      const out = Buffer.alloc(10 + (noZeroes ? 0 : C.EXPORT_NAME_PADDING))
      out.writeBigUInt64BE(BigInt(backend.size), 0)
      out.writeUInt16BE(cfg.transmissionFlags, 8)
      socket.write(out)
      return {backend, structured, blockStatus: metaFor === backend, via: 'export-name'}
    }

    try {
      switch (option) {
        case C.NBD_OPT_ABORT:
          reply(option, C.NBD_REP_ACK)
          return null

        case C.NBD_OPT_LIST:
          if (length !== 0) throw new OptionDataError('NBD_OPT_LIST takes no data')
          for (const name of cfg.exportNames()) reply(option, C.NBD_REP_SERVER, u32Prefixed(Buffer.byteLength(name), name))
          reply(option, C.NBD_REP_ACK)
          break

        case C.NBD_OPT_INFO:
        case C.NBD_OPT_GO: {
          const c = new Cursor(data)
          const name = c.string(c.u32('export name length'), 'export name')
          const count = c.u16('information request count')
          const requests: number[] = []
          for (let i = 0; i < count; i++) requests.push(c.u16('information request'))
          c.end(option === C.NBD_OPT_GO ? 'NBD_OPT_GO' : 'NBD_OPT_INFO')
          const backend = cfg.findExport(name)
          if (!backend) {
            refuse(option, C.NBD_REP_ERR_UNKNOWN, `unknown export "${name}"`)
            break
          }
          reply(option, C.NBD_REP_INFO, infoExport(backend.size, cfg.transmissionFlags))
          if (requests.includes(C.NBD_INFO_NAME)) reply(option, C.NBD_REP_INFO, infoName(backend.exportName))
          reply(option, C.NBD_REP_INFO, infoBlockSize(cfg.maxPayload))
          reply(option, C.NBD_REP_ACK)
          if (option === C.NBD_OPT_GO) return {backend, structured, blockStatus: metaFor === backend, via: 'go'}
          break
        }

        case C.NBD_OPT_STRUCTURED_REPLY:
          if (length !== 0) throw new OptionDataError('NBD_OPT_STRUCTURED_REPLY takes no data')
          structured = true
          reply(option, C.NBD_REP_ACK)
          break

        case C.NBD_OPT_LIST_META_CONTEXT:
        case C.NBD_OPT_SET_META_CONTEXT: {
          const set = option === C.NBD_OPT_SET_META_CONTEXT
          if (set) metaFor = null // a SET replaces the selection, even when it fails
          if (!structured) {
            refuse(option, C.NBD_REP_ERR_INVALID, 'negotiate structured replies before metadata contexts')
            break
          }
          const c = new Cursor(data)
          const name = c.string(c.u32('export name length'), 'export name')
          const nq = c.u32('query count')
          if (nq > C.MAX_META_QUERIES) {
            refuse(option, C.NBD_REP_ERR_TOO_BIG, `${nq} queries, more than the ${C.MAX_META_QUERIES} accepted`)
            break
          }
          const queries: string[] = []
          for (let i = 0; i < nq; i++) {
            const q = c.string(c.u32('query length'), 'query')
            if (!q.includes(':')) throw new OptionDataError(`query "${q}" has no namespace`)
            queries.push(q)
          }
          c.end('the metadata context option')
          const backend = cfg.findExport(name)
          if (!backend) {
            refuse(option, C.NBD_REP_ERR_UNKNOWN, `unknown export "${name}"`)
            break
          }
          const match = set ? queries.includes(C.BASE_ALLOCATION) : nq === 0 || queries.some((q) => q === 'base:' || q === C.BASE_ALLOCATION)
          if (match) {
            reply(option, C.NBD_REP_META_CONTEXT, u32Prefixed(set ? C.BASE_ALLOCATION_ID : 0, C.BASE_ALLOCATION))
            if (set) metaFor = backend
          }
          reply(option, C.NBD_REP_ACK)
          break
        }

        default: // NBD_OPT_STARTTLS included: this server runs without TLS
          refuse(option, C.NBD_REP_ERR_UNSUP, `option ${option} is not supported by this server`)
      }
    } catch (err) {
      if (!(err instanceof OptionDataError)) throw err
      refuse(option, C.NBD_REP_ERR_INVALID, err.message)
    }
  }
}
