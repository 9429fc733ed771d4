// A receiver session's log lines. A line may name its subject apart from its text (`fullsync
// /r/web.img` + `proved, ... bytes written`), so that a reader which already names the subject
// (the serve log's session line) prints the text alone, by comparing subjects, never by
// cutting a prefix off the text.

export interface SessionLog {
  (text: string, subject?: string, fields?: {seq?: number}): void
}

/**
 * What a serve log line is about, apart from its text: a journal or a log parser reads the disk
 * (replica), the peer's uid (the SSH account it came through: the receiver listens on loopback
 * behind SSH tunnels, so that is who pushed), the session and the sequence committed, without
 * parsing the text.
 */
export interface LogFields {
  disk?: string
  uid?: number
  session?: number
  seq?: number
}

/** A log that takes fields beside its text (the server's, serve's). */
export type FieldLog = (line: string, fields?: LogFields) => void

/** The line as one string, for a log that does not name the subject itself. */
export function sessionLine(text: string, subject?: string): string {
  return subject === undefined ? text : `${subject}: ${text}`
}
