// A consistency group's name: it names a folder on the replica host (doc/group-commit.md), so
// it is a short, plain word, checked wherever one comes in (init, push, the receiver's frames).
import {UsageError} from '../errors.js'

export const MAX_GROUP_NAME = 64
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

export function isGroupName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_GROUP_NAME && NAME.test(name)
}

export function checkGroupName(name: string, what = '--group'): string {
  if (!isGroupName(name))
    throw new UsageError('BAD_GROUP_NAME', `${what} ${JSON.stringify(name)} is not a group name`, {
      hint: `use 1 to ${MAX_GROUP_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit`,
    })
  return name
}
