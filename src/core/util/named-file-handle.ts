// Node's errors from a FileHandle's write/read/sync say what failed (ENOSPC, EIO) but not on
// which file: the path is known only at open. This wrapper puts it on the error (`path`, as
// Node's own path-taking calls do), so the report can name the file ("no space left on this
// host for /vm/web.img.psf") instead of leaving the user to guess which host and file.
import type {FileHandle} from 'node:fs/promises'

export function namedFileHandle(fh: FileHandle, path: string): FileHandle {
  return new Proxy(fh, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args)
        return out instanceof Promise ? out.catch((err: unknown) => Promise.reject(withPath(err, path))) : out
      }
    },
  })
}

function withPath(err: unknown, path: string): unknown {
  if (err instanceof Error && (err as NodeJS.ErrnoException).path === undefined) (err as NodeJS.ErrnoException).path = path
  return err
}
