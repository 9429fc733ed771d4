// `push --group NAME` with no disk named: the members are the disks of the config file whose
// `group` setting (their own, or the defaults') is NAME.
import type {FleetConfig} from '../fleet/config-file.js'
import type {DiskRef} from './push-group.js'

export function groupMembersFromConfig(config: FleetConfig, group: string): DiskRef[] {
  return config.disks.filter((d) => d.settings.filter((s) => s.key === 'group').at(-1)?.values[0] === group).map((d) => ({disk: d.disk}))
}
