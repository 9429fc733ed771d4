// The instance name of a per-disk unit (vdrep-track@, vdrep-push@): the disk's path escaped as
// `systemd-escape --path` does (systemd's unit_name_path_escape), so `%I` in the unit gives the
// path back exactly. Tested against systemd-escape itself.
import path from 'node:path'

/** Bytes kept as they are inside a unit name; '-' is not (it stands for '/'). */
const KEEP = /^[A-Za-z0-9:_.]$/

function hex(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`
}

/** `/vm/web.img` -> `vm-web.img`; `/vm/my disk.img` -> `vm-my\x20disk.img`; `/` -> `-`. */
export function systemdEscapePath(p: string): string {
  // systemd simplifies the path first (duplicate and trailing slashes, `.` parts) and drops the
  // leading and trailing '/'.
  const simple = path.posix.normalize(p).replace(/^\/+|\/+$/g, '')
  if (simple === '' || simple === '.') return '-'
  let out = ''
  const bytes = Buffer.from(simple, 'utf8')
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]
    const c = String.fromCharCode(b)
    if (c === '/') out += '-'
    else if ((i === 0 && c === '.') || b >= 0x80 || !KEEP.test(c)) out += hex(b)
    else out += c
  }
  return out
}
