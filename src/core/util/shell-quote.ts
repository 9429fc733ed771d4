// Quoting for the command lines vdrep prints for other programs to run (the crontab line):
// a path is data, never shell syntax, whatever characters its name holds.

/** Characters a POSIX shell never treats specially in a word; anything else is quoted. */
const PLAIN_WORD = /^[A-Za-z0-9_/.,:@=+-]+$/

/** One argument for `sh`: bare when plain, else in single quotes (a `'` becomes `'\''`). */
export function shellQuote(arg: string): string {
  if (PLAIN_WORD.test(arg)) return arg
  return `'${arg.replaceAll("'", `'\\''`)}'`
}

/**
 * A shell command made fit for the command field of a crontab line: cron turns an unescaped
 * `%` into a newline (the rest becomes the command's stdin), whatever shell quotes surround
 * it, so every `%` is written `\%`; cron removes the backslash before `sh` sees the command.
 * A line break cannot be written in a crontab at all: the caller refuses such names earlier.
 */
export function cronCommand(shellCommand: string): string {
  if (/[\r\n]/.test(shellCommand)) throw new Error('a crontab command cannot hold a line break')
  return shellCommand.replaceAll('%', '\\%')
}
