// Where a key sits in the config file, for error messages only ("vdrep.conf:12: rpo: ..."). The
// TOML parser gives values, not positions; this scan of the plain text finds the line of each
// `key =` under its table header (`[defaults]`, the n-th `[[disk]]`). A layout it does not
// follow (inline tables, keys split over lines) just gets the table's line, or none.

/** `defaults`, `disk#3` (the fourth [[disk]]), or '' for the top level. */
export type TableName = string

export class ConfigLines {
  private readonly at = new Map<string, number>()

  constructor(text: string) {
    let table: TableName = ''
    let disks = -1
    let inMultiline: string | null = null
    text.split('\n').forEach((raw, i) => {
      const line = i + 1
      if (inMultiline) {
        if (raw.includes(inMultiline)) inMultiline = null
        return
      }
      const s = raw.trim()
      if (s.startsWith('[[')) {
        const name = s.slice(2, s.indexOf(']]')).trim()
        if (name === 'disk') table = `disk#${++disks}`
        else table = name
        this.at.set(`${table}.`, line)
        return
      }
      if (s.startsWith('[')) {
        table = s.slice(1, s.indexOf(']')).trim()
        this.at.set(`${table}.`, line)
        return
      }
      const m = /^("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(s)
      if (!m) return
      const key = m[1].replace(/^["']|["']$/g, '')
      if (!this.at.has(`${table}.${key}`)) this.at.set(`${table}.${key}`, line)
      for (const q of ['"""', "'''"]) {
        const v = m[2]
        if (v.startsWith(q) && !v.slice(3).includes(q)) inMultiline = q
      }
    })
  }

  /** The line of `key` in `table` (or of the table itself, with no key), or null. */
  lineOf(table: TableName, key?: string): number | null {
    return this.at.get(`${table}.${key ?? ''}`) ?? this.at.get(`${table}.`) ?? null
  }
}
