// The result of `vdrep check`: one line per check, in the order they ran, each ok, a warning,
// a failure that says what to fix, or skipped because an earlier one failed (no login without
// a known host key, no receiver without a login).

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip'

export interface CheckItem {
  /** Short and stable, for scripts: `disk`, `psf`, `host`, `ssh-port`, `host-key`, `login`, `receiver-delta`, ... */
  name: string
  status: CheckStatus
  /** What was found. */
  detail: string
  /** For a warning or a failure: what to do. */
  fix?: string
}

export interface CheckReport {
  disk: string
  /** The target from the .psf, when it could be read. */
  target?: string
  /** No check failed (warnings allowed). */
  ok: boolean
  checks: CheckItem[]
}

export class Checklist {
  readonly items: CheckItem[] = []

  ok(name: string, detail: string): void {
    this.items.push({name, status: 'ok', detail})
  }

  warn(name: string, detail: string, fix?: string): void {
    this.items.push({name, status: 'warn', detail, ...(fix ? {fix} : {})})
  }

  fail(name: string, detail: string, fix?: string): void {
    this.items.push({name, status: 'fail', detail, ...(fix ? {fix} : {})})
  }

  skip(names: string[], why: string): void {
    for (const name of names) this.items.push({name, status: 'skip', detail: why})
  }

  get failed(): boolean {
    return this.items.some((i) => i.status === 'fail')
  }
}
