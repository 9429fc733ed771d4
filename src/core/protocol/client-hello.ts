// The HELLO every client opens a session with, from the fields of its .psf header: one place, so
// the full sync, the push, a group member, reprotect, the points query and `check` can never
// disagree on what a field means (the version, the commit ids, when the COMPRESS flag is set).
import {PROTOCOL_VERSION} from './frame.js'
import {COMMIT_ID_LENGTH, encodeHello, HelloFlag} from './messages.js'

/** The header fields a HELLO carries (PsfHeader has them all). */
export interface HelloIdentity {
  hashAlgo: number
  blockSize: number
  diskSize: number
  replicaId: Buffer
  lastCommit: Buffer
}

export interface HelloRequest {
  mode: number
  flags: number
  /** The replica's path as the receiver is asked for it. */
  path: string
  /** The source's size when it is read now (the header's otherwise). */
  diskSize?: number
  /** The commit this session records when it succeeds; a query commits nothing (zeros). */
  nextCommit?: Buffer
  /** Codecs to offer: a non-empty list sets COMPRESS. */
  codecs?: number[]
}

export function encodeClientHello(h: HelloIdentity, r: HelloRequest): Buffer {
  const offered = (r.codecs?.length ?? 0) > 0
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode: r.mode,
    hashAlgo: h.hashAlgo,
    blockSize: h.blockSize,
    diskSize: r.diskSize ?? h.diskSize,
    replicaId: h.replicaId,
    flags: r.flags | (offered ? HelloFlag.COMPRESS : 0),
    ...(offered ? {codecs: r.codecs} : {}),
    lastCommit: h.lastCommit,
    nextCommit: r.nextCommit ?? Buffer.alloc(COMMIT_ID_LENGTH),
    path: r.path,
  })
}
