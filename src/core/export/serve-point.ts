// `vdrep export --nbd`: one restore point served read-only over NBD until closed. The point is
// pinned for as long as the export is open (retention keeps it), and its view does not move
// while pushes commit (points/point-reader.ts).
//
// Who may connect: a unix socket is made mode 0600 (only its owner, and root, can connect); on
// loopback TCP, which every local user can reach, a connection is served only when the socket
// at its other end belongs to our uid or root, as `vdrep track` does. Never another address.
import path from 'node:path'
import {openPoint, type PointReader} from '../points/point-reader.js'
import {NbdServer, type NbdAddress} from '../tracker/nbd/server.js'
import type {PointInfo} from '../points/list.js'
import {parsePointSpec, resolvePoint} from './at.js'
import {PointBackend} from './point-backend.js'

export interface ServePointOptions {
  /** `--at`: a sequence, 'latest', a date or -DURATION (export/at.ts). */
  at?: string
  /** `unix:PATH` or `127.0.0.1:PORT`; repeatable. */
  listen: string[]
  /** One line per NBD connection when it ends, and per refused peer. */
  log?: (line: string) => void
  /** One line per connection refused (another user's peer on loopback TCP); default: log. */
  onRefused?: (line: string) => void
}

export interface ServedPoint {
  replica: string
  seq: number
  /** The point's commit time, ISO 8601. */
  time: string
  size: number
  exportName: string
  nbd: string[]
}

export const describeAddress = (a: NbdAddress): string => (a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`)

/** Only our own uid and root: the peers an unauthenticated protocol may serve. */
export const ownPeers = (): number[] => [...new Set([process.getuid?.() ?? 0, 0])]

/** A point of one replica to serve, under an export name. */
export interface PointToServe {
  replica: string
  seq: number
  exportName: string
}

export class PointExport {
  private constructor(
    /** One per export (a group's members, or the one replica). */
    readonly infos: ServedPoint[],
    private readonly readers: PointReader[],
    private readonly server: NbdServer,
  ) {}

  get info(): ServedPoint {
    return this.infos[0]
  }

  static async start(replica: string, opts: ServePointOptions): Promise<PointExport> {
    const point: PointInfo = await resolvePoint(replica, parsePointSpec(opts.at))
    return PointExport.startMany([{replica, seq: point.seq, exportName: path.basename(replica)}], opts)
  }

  /** Several points (a consistency group's members at one group point) as exports of one server. */
  static async startMany(points: PointToServe[], opts: Omit<ServePointOptions, 'at'>): Promise<PointExport> {
    const readers: PointReader[] = []
    let server: NbdServer | undefined
    try {
      for (const p of points) readers.push(await openPoint(p.replica, p.seq))
      server = new NbdServer(
        readers.map((r, i) => new PointBackend(r, points[i].exportName)),
        {readOnly: true, unixMode: 0o600, allowedPeerUids: ownPeers(), onRefused: opts.onRefused, logger: opts.log},
      )
      const nbd: string[] = []
      for (const spec of opts.listen) nbd.push(describeAddress(await server.listen(spec)))
      const infos = readers.map((r, i) => ({
        replica: points[i].replica,
        seq: r.seq,
        time: new Date(r.ms).toISOString(),
        size: r.size,
        exportName: points[i].exportName,
        nbd,
      }))
      return new PointExport(infos, readers, server)
    } catch (err) {
      await server?.close()
      for (const r of readers) await r.close()
      throw err
    }
  }

  get connections(): number {
    return this.server.connectionCount
  }

  /** Stop serving (requests in flight finish), then unpin the points. */
  async close(): Promise<void> {
    await this.server.close()
    for (const r of this.readers) await r.close()
  }
}
