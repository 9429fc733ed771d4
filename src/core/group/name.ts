// A consistency group's name: it names a folder on the replica host (doc/group-commit.md), so
// it is a short, plain word, checked wherever one comes in (init, push, the receiver's frames).
import {UsageError} from '../errors.js'
import {GROUP_NAME} from '../psf/settings.js'

export const MAX_GROUP_NAME = 64

/** The one rule, shared with the .psf settings (psf/settings.ts) and `vdrep config`. */
export function isGroupName(name: unknown): name is string {
  return typeof name === 'string' && GROUP_NAME.test(name)
}

export function checkGroupName(name: string, what = '--group'): string {
  if (!isGroupName(name))
    throw new UsageError('BAD_GROUP_NAME', `${what} ${JSON.stringify(name)} is not a group name`, {
      hint: `use 1 to ${MAX_GROUP_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit`,
    })
  return name
}
