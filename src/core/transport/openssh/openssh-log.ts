// Reads what `ssh -vv` says on stderr: whether the tunnel opened, and the lines that explain a
// failure. Debug lines are dropped after this reading; the others are kept (bounded) for
// the error message.
//
// The positive signal: a direct `ssh -W` logs `channel_connect_stdio_fwd: 127.0.0.1:PORT`,
// then `channel N: open confirm` once sshd opened the channel. A ProxyJump's inner ssh logs
// the same pair for its own hop first, with the next host's sshd as the address, so the
// confirm counts only after our own address was logged. Through a ControlMaster (the user's
// ssh_config), the mux client logs `master session id` once the master's channel opened.

const KEEP_LINES = 40

export type TunnelSignal = 'opened' | undefined

export class OpenSshLog {
  private partial = ''
  private armed = false
  private readonly kept: string[] = []
  opened = false

  constructor(private readonly port?: number) {}

  /** Feeds stderr; returns 'opened' once, at the chunk that says the channel opened. */
  feed(chunk: string): TunnelSignal {
    const text = this.partial + chunk
    const lines = text.split('\n')
    this.partial = lines.pop() ?? ''
    let signal: TunnelSignal
    for (const raw of lines) if (this.line(raw.replace(/\r$/, ''))) signal = 'opened'
    return signal
  }

  /** The non-debug lines so far (the last KEEP_LINES), with any unfinished one. */
  messages(): string[] {
    const tail = this.partial.trim()
    return tail && !isDebug(tail) ? [...this.kept, tail] : [...this.kept]
  }

  private line(line: string): boolean {
    if (!isDebug(line)) {
      if (line.trim() === '') return false
      this.kept.push(line.trim())
      if (this.kept.length > KEEP_LINES) this.kept.shift()
      return false
    }
    if (this.opened || this.port === undefined) return false
    if (line.endsWith(`channel_connect_stdio_fwd: 127.0.0.1:${this.port}`)) this.armed = true
    else if ((this.armed && /channel \d+: open confirm/.test(line)) || /master session id: \d+/.test(line)) {
      this.opened = true
      return true
    }
    return false
  }
}

/** Debug lines, and what -vv prints that is not debug but says nothing about a failure. */
function isDebug(line: string): boolean {
  return /^debug\d: |^OpenSSH_|^Authenticated to |^Transferred: |^Bytes per second/.test(line)
}
