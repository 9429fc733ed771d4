// A receiver session's log lines. A line may name its subject apart from its text (`fullsync
// /r/web.img` + `proved, ... bytes written`), so that a reader which already names the subject
// (the serve log's session line) prints the text alone, by comparing subjects, never by
// cutting a prefix off the text.

export interface SessionLog {
  (text: string, subject?: string): void
}

/** The line as one string, for a log that does not name the subject itself. */
export function sessionLine(text: string, subject?: string): string {
  return subject === undefined ? text : `${subject}: ${text}`
}
