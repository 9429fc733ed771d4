// The key a host presents, fetched without trusting it or logging in: what `vdrep check` shows
// for a host that is not in known_hosts, so the user can compare its fingerprint with the one
// on the replica host and add the line themselves. ssh2 asks our hostVerifier about the key
// during the handshake; we note it and say no, so nothing more is exchanged.
import ssh2 from 'ssh2'
import {fingerprintSha256, keyTypeOf} from '../transport/ssh/host-key.js'

export interface ScannedKey {
  type: string
  fingerprint: string
  blob: Buffer
}

export function scanHostKey(host: string, port: number, timeoutMs: number): Promise<ScannedKey | undefined> {
  return new Promise((resolve) => {
    const client = new ssh2.Client()
    let key: ScannedKey | undefined
    const done = () => {
      clearTimeout(timer)
      client.removeAllListeners()
      client.on('error', () => {})
      client.end()
      resolve(key)
    }
    const timer = setTimeout(done, timeoutMs)
    client.on('error', done)
    client.on('close', done)
    client.on('ready', done)
    try {
      client.connect({
        host,
        port,
        username: 'vdrep-check',
        readyTimeout: timeoutMs,
        hostVerifier: (blob: Buffer) => {
          key = {type: keyTypeOf(blob), fingerprint: fingerprintSha256(blob), blob: Buffer.from(blob)}
          return false
        },
      })
    } catch {
      done()
    }
  })
}
