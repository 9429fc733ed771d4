// The flags that say how to reach a target (as `vdrep init` takes them), shared by the commands
// that set a target later: `failover --to` and `reprotect --to` (the old primary host).
import path from 'node:path'
import {Flags} from '@oclif/core'
import type {ReplicationSettings} from '../core/psf/settings.js'

export const targetFlags = {
  identity: Flags.string({description: 'SSH identity file (repeatable)', multiple: true}),
  'known-hosts': Flags.string({description: 'known_hosts file to verify the other host against'}),
  'fullsync-port': Flags.integer({description: "the other host's receiver full-sync port", min: 1, max: 65535}),
  'delta-port': Flags.integer({description: "the other host's receiver delta port", min: 1, max: 65535}),
  'serve-command': Flags.string({description: 'remote command that starts the receiver when none listens'}),
}

interface TargetFlagValues {
  identity?: string[]
  'known-hosts'?: string
  'fullsync-port'?: number
  'delta-port'?: number
  'serve-command'?: string
}

/** Only what was given: the rest of the record's settings stays as it is. */
export function settingsFromFlags(f: TargetFlagValues): Partial<ReplicationSettings> {
  const ssh = {
    ...(f.identity ? {identityFiles: f.identity.map((x) => path.resolve(x))} : {}),
    ...(f['known-hosts'] ? {knownHostsFile: path.resolve(f['known-hosts'])} : {}),
    ...(f['serve-command'] ? {serveCommand: f['serve-command']} : {}),
  }
  return {
    ...(Object.keys(ssh).length > 0 ? {ssh} : {}),
    ...(f['fullsync-port'] ? {fullsyncPort: f['fullsync-port']} : {}),
    ...(f['delta-port'] ? {deltaPort: f['delta-port']} : {}),
  }
}
