import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {ServiceLog} from '../cli/service-log.js'
import {VdrepError} from '../core/errors.js'
import {SyncMode} from '../core/protocol/messages.js'
import {loadServeConfig, type ServeConfig} from '../core/receiver/serve-config.js'
import {ReceiverServer} from '../core/receiver/server.js'
import type {LogFields} from '../core/receiver/session-log.js'
import {sdNotify} from '../core/native/sd-notify.js'
import {parseDuration} from '../core/util/units.js'

export interface ServeResult {
  root: string
  listen: string
  ports: number[]
  pid: number
  daemon: boolean
  aborted?: number
}

/** How long `--daemon` waits for the receiver it started to listen. */
const DAEMON_READY_MS = 15_000

export default class Serve extends BaseCommand {
  static override summary = 'Run the receiver on the replica host: listen on 127.0.0.1 for tunnels from vdrep clients and write replicas under the root.'
  static override examples = [
    '<%= config.bin %> serve --root /srv/replicas',
    '<%= config.bin %> serve --root /srv/replicas --fullsync-port 31031 --delta-port 44046 --log-file /var/log/vdrep/serve.log',
    '<%= config.bin %> serve --daemon   # root and ports from ~/.config/vdrep/serve.json or /etc/vdrep/serve.json',
  ]
  static override flags = {
    root: Flags.string({description: 'write replicas only under this directory (default: from the config file)'}),
    config: Flags.string({description: 'config file (default: $VDREP_SERVE_CONFIG, ~/.config/vdrep/serve.json, /etc/vdrep/serve.json)'}),
    'fullsync-port': Flags.integer({description: 'full-sync port on 127.0.0.1 [default: 31031]', min: 1, max: 65535}),
    'delta-port': Flags.integer({description: 'delta port on 127.0.0.1 [default: 44046]', min: 1, max: 65535}),
    listen: Flags.string({description: 'address to listen on; only 127.0.0.1 is accepted [default: 127.0.0.1]'}),
    'log-file': Flags.string({description: 'append the log here instead of stderr'}),
    'idle-timeout': Flags.string({description: 'drop a client that sends nothing for this long [default: 5m]'}),
    'max-connections': Flags.integer({
      description: 'connections open at once, refused ones included; more are closed at accept [default: 64]',
      min: 1,
      max: 4096,
    }),
    'max-connections-per-uid': Flags.integer({
      description: 'sessions served at once for one user; more are refused with RECEIVER_BUSY [default: 16]',
      min: 1,
      max: 4096,
    }),
    daemon: Flags.boolean({description: 'start in the background, wait until it listens, then return (used by clients over SSH)'}),
  }

  async run(): Promise<ServeResult> {
    const {flags} = await this.parse(Serve)
    this.setGlobals(flags)
    const config = await loadServeConfig({
      root: flags.root,
      config: flags.config,
      fullsyncPort: flags['fullsync-port'],
      deltaPort: flags['delta-port'],
      listen: flags.listen,
      logFile: flags['log-file'],
      idleTimeoutMs: flags['idle-timeout'] ? parseDuration(flags['idle-timeout'], '--idle-timeout') * 1000 : undefined,
      maxConnections: flags['max-connections'],
      maxConnectionsPerUid: flags['max-connections-per-uid'],
    })
    if (flags.daemon) return this.daemonize(config)
    return this.serve(config)
  }

  private async serve(config: ServeConfig): Promise<ServeResult> {
    const logs = new ServiceLog(config.logFile, 'vdrep serve')
    const log = (line: string, fields?: LogFields) => logs.line(line, fields)
    const server = await ReceiverServer.start({
      root: config.root,
      listen: config.listen,
      listeners: [
        {port: config.fullsyncPort, modes: [SyncMode.FULLSYNC]},
        {port: config.deltaPort, modes: [SyncMode.DELTA, SyncMode.POINTS]},
      ],
      idleTimeoutMs: config.idleTimeoutMs,
      maxConnections: config.maxConnections,
      maxConnectionsPerUid: config.maxConnectionsPerUid,
      log,
      receiverFiles: [config.logFile, config.configFile].filter((f): f is string => f !== undefined),
    })
    const ready = `listening on 127.0.0.1:${server.ports.join(',')} (root ${config.root}, pid ${process.pid}${config.configFile ? `, config ${config.configFile}` : ''})`
    if (logs.toFile) log(ready)
    try {
      // Type=notify: ready only now that every port listens (a unit that cannot be told fails instead).
      sdNotify({READY: '1', STATUS: ready})
    } catch (err) {
      log(`error: ${(err as Error).message}`)
      await server.stop(0)
      await logs.close()
      throw err
    }
    if (process.send) {
      // Started by --daemon: stderr is the log file already; the parent prints the line.
      process.send({ready})
      process.disconnect()
    } else {
      process.stderr.write(`vdrep serve: ${ready}\n`)
    }
    const signal = await untilStop(() => {
      // logrotate renamed the file: the next lines go to a new one; no session is touched.
      try {
        logs.reopen()
        log('SIGHUP: log file reopened')
      } catch (err) {
        log(`SIGHUP: cannot reopen the log file, still writing the old one: ${(err as Error).message}`)
      }
    })
    notifyStopping(log)
    log(`${signal}: no new connections; ${server.activeSessions} session(s) running`)
    const {aborted} = await server.stop()
    log(`stopped${aborted > 0 ? ` (${aborted} session(s) cut; their replicas stay incomplete and resume on the next run)` : ''}`)
    await logs.close()
    return {root: config.root, listen: config.listen, ports: server.ports, pid: process.pid, daemon: false, aborted}
  }

  /** Start this command again, detached, and return once it listens (or say why not). */
  private async daemonize(config: ServeConfig): Promise<ServeResult> {
    const logPath = config.logFile ?? path.join(process.env['XDG_STATE_HOME'] || path.join(os.homedir(), '.local', 'state'), 'vdrep', 'serve.log')
    fs.mkdirSync(path.dirname(logPath), {recursive: true, mode: 0o700})
    const logFd = fs.openSync(logPath, 'a', 0o600)
    const args = [
      process.argv[1]!,
      'serve',
      '--root',
      config.root,
      '--fullsync-port',
      String(config.fullsyncPort),
      '--delta-port',
      String(config.deltaPort),
      '--listen',
      config.listen,
      '--log-file',
      logPath,
      '--idle-timeout',
      `${Math.round(config.idleTimeoutMs / 1000)}s`,
      '--max-connections',
      String(config.maxConnections),
      '--max-connections-per-uid',
      String(config.maxConnectionsPerUid),
    ]
    const child = spawn(process.execPath, args, {detached: true, stdio: ['ignore', 'ignore', logFd, 'ipc'], cwd: '/', env: withoutNotifySocket()})
    fs.closeSync(logFd)
    const outcome = await new Promise<{ready?: string; code?: number | null}>((resolve) => {
      const timer = setTimeout(() => resolve({}), DAEMON_READY_MS)
      child.once('message', (m: {ready?: string}) => {
        clearTimeout(timer)
        resolve({ready: m.ready})
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        resolve({code})
      })
      child.once('error', () => resolve({code: null}))
    })
    if (outcome.ready === undefined) {
      if (outcome.code === undefined) child.kill('SIGTERM')
      const tail = lastLines(logPath, 3)
      throw new VdrepError(
        'SERVE_START_FAILED',
        `the receiver did not start${outcome.code !== undefined ? ` (exit ${outcome.code})` : ` within ${DAEMON_READY_MS / 1000} s`}${tail ? `: ${tail}` : ''}`,
        {
          hint: `see ${logPath}`,
        },
      )
    }
    if (child.connected) child.disconnect()
    child.unref()
    process.stderr.write(`vdrep serve: started in the background: ${outcome.ready.replace(/pid \d+/, `pid ${child.pid}`)}; log ${logPath}\n`)
    return {root: config.root, listen: config.listen, ports: [config.fullsyncPort, config.deltaPort], pid: child.pid!, daemon: true}
  }
}

function lastLines(file: string, n: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ')
  } catch {
    return ''
  }
}

/** Resolves at SIGTERM or SIGINT; SIGHUP (logrotate) calls onHup and keeps serving. */
function untilStop(onHup: () => void): Promise<NodeJS.Signals> {
  process.on('SIGHUP', onHup)
  return new Promise((resolve) => {
    const stop = (sig: NodeJS.Signals) => {
      process.off('SIGHUP', onHup)
      resolve(sig)
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}

function notifyStopping(log: (line: string) => void): void {
  try {
    sdNotify({STOPPING: '1', STATUS: 'stopping: waiting for the running sessions'})
  } catch (err) {
    log(`warning: ${(err as Error).message}`)
  }
}

/** The --daemon child is not the unit's main process: it must not answer systemd's socket. */
function withoutNotifySocket(): NodeJS.ProcessEnv {
  const env = {...process.env}
  delete env.NOTIFY_SOCKET
  return env
}
