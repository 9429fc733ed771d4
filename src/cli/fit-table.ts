// A table of plain-text cells laid out in columns two spaces apart, fitted to a terminal's
// width: when it is too wide, the columns that hold paths give up characters from their middle
// (the start and the file name stay readable), widest first, down to a floor. Without a width
// (a pipe, cron) nothing is cut: scripts that read the table get whole paths.

/** A path shortened to `max` characters by an ellipsis in its middle. */
export function elideMiddle(text: string, max: number): string {
  if (text.length <= max) return text
  if (max <= 1) return '…'.slice(0, max)
  const tail = Math.ceil((max - 1) / 2)
  const head = max - 1 - tail
  return `${text.slice(0, head)}…${text.slice(text.length - tail)}`
}

export interface FitOptions {
  /** The terminal's width; undefined: no limit. */
  columns?: number
  /** Indexes of the columns that may be shortened (paths). */
  elastic: number[]
  /** The narrowest an elastic column becomes. */
  minWidth?: number
}

export function fitTable(head: string[], rows: string[][], opts: FitOptions): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1)
  const floor = opts.minWidth ?? 12
  if (opts.columns !== undefined) {
    const limit = (i: number) => Math.max(floor, head[i].length)
    while (total() > opts.columns) {
      const [widest, next] = opts.elastic.filter((i) => widths[i] > limit(i)).sort((a, b) => widths[b] - widths[a])
      if (widest === undefined) break // as narrow as it goes: the terminal wraps the rest
      // Down to the next widest at most, so that the paths share the cut.
      const to = Math.max(limit(widest), next === undefined ? 0 : widths[next])
      widths[widest] -= Math.max(1, Math.min(total() - opts.columns, widths[widest] - to))
    }
  }
  const line = (cells: string[]) =>
    cells
      .map((v, i) => (opts.elastic.includes(i) ? elideMiddle(v, widths[i]) : v))
      .map((v, i, all) => (i === all.length - 1 ? v : v.padEnd(widths[i])))
      .join('  ')
  return [line(head), ...rows.map(line)]
}
