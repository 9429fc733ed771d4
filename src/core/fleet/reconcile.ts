// The config file says which settings a disk should have; its .psf says which it has. Before
// `push --all` or `fullsync --all` works on a disk, the two are made to agree, never silently:
//   - a setting that keeps the replica (RPO, identity, known_hosts, ports, login, bandwidth,
//     hooks, retention, group) is written into the .psf by the same path as `vdrep config`
//     (settings/change.ts: the change record is kept, the next push is still a delta), and the
//     change is logged key by key;
//   - a target naming another replica (another host or path) is refused for that disk
//     (CONFIG_TARGET_DIFFERS): moving a disk to a new replica means a full sync, which only
//     `vdrep config DISK target NEW` starts, on purpose. A delta never goes to another replica.
import {UsageError} from '../errors.js'
import type {ReplicationSettings} from '../psf/settings.js'
import {changeDiskSettings, readDiskSettings, type SettingsChange} from '../settings/change.js'
import {replicaOf, settingKey} from '../settings/keys.js'
import {shellQuote} from '../util/shell-quote.js'
import type {ConfiguredDisk} from './config-file.js'

/** The settings the config asks for, applied over `current` (keys it does not name stay). */
export function desiredSettings(d: ConfiguredDisk, current: ReplicationSettings): ReplicationSettings {
  let s = current
  for (const c of d.settings) s = settingKey(c.key).set(s, c.values, c.base)
  return s
}

/** Make the disk's .psf agree with the config (see above); null when it already does. */
export async function applyConfigToDisk(d: ConfiguredDisk, file: string): Promise<SettingsChange | null> {
  const now = await readDiskSettings(d.disk)
  const wanted = desiredSettings(d, now.settings)
  if (replicaOf(wanted.target) !== replicaOf(now.settings.target)) {
    throw new UsageError(
      'CONFIG_TARGET_DIFFERS',
      `${file}${d.line ? `:${d.line}` : ''}: ${d.disk} is to replicate to ${wanted.target}, but its .psf replicates to ${now.settings.target}: not pushed`,
      {hint: `to move it to the new replica (the next sync is then a full sync): vdrep config ${shellQuote(d.disk)} target ${shellQuote(wanted.target)}`},
    )
  }
  const change = await changeDiskSettings(d.disk, (cur) => desiredSettings(d, cur))
  return change.changed.length > 0 ? change : null
}
