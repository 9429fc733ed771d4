// `vdrep check`'s lines for a person: one per check, ✓/✗/! on a terminal (green, red, yellow),
// `ok`/`FAIL`/`warn`/`skip` words without one (cron mail, logs, grep), and under each warning or
// failure the fix on its own indented line.
import chalk from 'chalk'
import type {CheckItem} from '../core/check/check.js'

const MARK = {ok: ['✓', chalk.green], fail: ['✗', chalk.red], warn: ['!', chalk.yellow], skip: ['-', chalk.dim]} as const
const WORD = {ok: 'ok  ', fail: 'FAIL', warn: 'warn', skip: 'skip'} as const

export function renderChecks(items: CheckItem[], tty: boolean): string[] {
  const out: string[] = []
  for (const i of items) {
    const [mark, paint] = MARK[i.status]
    out.push(`${tty ? paint(mark) : WORD[i.status]} ${i.name}: ${i.detail}`)
    if (i.fix && (i.status === 'fail' || i.status === 'warn')) out.push(`${tty ? ' ' : '    '}   fix: ${i.fix}`)
  }
  return out
}
