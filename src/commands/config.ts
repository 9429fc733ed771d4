import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {stateDirFlag} from '../cli/state-dir-flag.js'
import {changeText} from '../cli/fleet-flags.js'
import {UsageError} from '../core/errors.js'
import {changeDiskSettings, readDiskSettings, type SettingsChange} from '../core/settings/change.js'
import {INIT_ONLY_KEYS, SETTING_KEYS, settingKey} from '../core/settings/keys.js'
import {formatBytes} from '../core/util/units.js'

export interface ConfigListResult {
  disk: string
  psf: string
  settings: Record<string, string | null>
  /** What only a new init changes. */
  fixed: Record<string, string>
  /** The next sync is a full sync: the target was changed to another replica. */
  targetChanged: boolean
}

export default class Config extends BaseCommand {
  static override summary = "Show or change a disk's replication settings in place, keeping its change record (the next push stays a delta)."
  static override description = `With no key: every setting. With a key: its value. With a key and a value: the setting is written into the disk's .psf in place (through the running tracker when one runs, else under the disk lock), and the bitmaps, block hash index and commit chain stay: the next push is still a delta.

Keys: ${SETTING_KEYS.map((k) => `${k.name} (${k.summary})`).join('; ')}.

A target that names another replica (another host or path) resets the replica binding: the next push is a full sync that says why, never a delta to another replica (a replica that was this disk's before is refused as another source's: --take-over-replica). A login (ssh-user) or SSH port change keeps the replica. ${INIT_ONLY_KEYS.join(', ')} shape the change record itself: only \`vdrep init --force\` (and a full sync) changes them.`
  static override examples = [
    '<%= config.bin %> config /vm/web.img',
    '<%= config.bin %> config /vm/web.img rpo',
    '<%= config.bin %> config /vm/web.img rpo 5m',
    '<%= config.bin %> config /vm/web.img identity /root/.ssh/id_ed25519 /root/.ssh/id_rsa',
    '<%= config.bin %> config /vm/web.img pre-hook --unset',
    '<%= config.bin %> config /vm/web.img target backup@dr2:/srv/replicas/web.img   # a new replica: the next push is a full sync',
  ]
  static override strict = false
  static override args = {
    disk: Args.string({description: 'disk initialised with `vdrep init`', required: true}),
    key: Args.string({description: 'a setting (no key: list them all)'}),
    value: Args.string({description: 'its new value (identity takes several)'}),
  }
  static override flags = {
    'state-dir': stateDirFlag,
    unset: Flags.boolean({description: 'unset the key (back to its default: no hook, no cap, no group, ...)'}),
  }

  async run(): Promise<ConfigListResult | {key: string; value: string | null} | SettingsChange> {
    const {args, argv, flags} = await this.parse(Config)
    this.setGlobals(flags)
    const values = (argv as string[]).slice(2)
    if (args.key === undefined) return this.list(args.disk)
    const key = settingKey(args.key)
    if (flags.unset) {
      if (values.length > 0) throw new UsageError('USAGE', `--unset takes no value (got ${values.join(' ')})`)
      const unset = key.unset
      if (!unset) throw new UsageError('SETTING_BAD', `${key.name} cannot be unset: give it a value`)
      return this.report(await changeDiskSettings(args.disk, unset))
    }
    if (values.length === 0) {
      const value = key.show((await readDiskSettings(args.disk)).settings)
      this.say(value ?? '-')
      return {key: key.name, value}
    }
    return this.report(await changeDiskSettings(args.disk, (s) => key.set(s, values, process.cwd())))
  }

  private async list(disk: string): Promise<ConfigListResult> {
    const s = await readDiskSettings(disk)
    const settings = Object.fromEntries(SETTING_KEYS.map((k) => [k.name, k.show(s.settings)]))
    const fixed = {
      'block-size': formatBytes(s.fixed.blockSize),
      hash: s.fixed.hash,
      'al-extents': String(s.fixed.activityLogExtents),
      'al-extent-size': formatBytes(s.fixed.activityLogExtentBytes),
    }
    const width = Math.max(...[...Object.keys(settings), ...Object.keys(fixed)].map((k) => k.length))
    for (const [k, v] of Object.entries(settings)) this.say(`${k.padEnd(width)}  ${v ?? '-'}`)
    for (const [k, v] of Object.entries(fixed)) this.say(`${k.padEnd(width)}  ${v}   (vdrep init --force to change)`)
    if (s.targetChanged) this.say('the target was changed: the next push is a full sync to the new replica')
    return {disk: s.disk, psf: s.psf, settings, fixed, targetChanged: s.targetChanged}
  }

  private report(c: SettingsChange): SettingsChange {
    if (c.changed.length === 0) this.say(`config ${c.disk}: unchanged`)
    else {
      const by = c.via === 'tracker' ? ' (through the running tracker)' : ''
      this.say(`config ${c.disk}: ${changeText(c.changed)}${by}`)
      this.say(
        c.rebound
          ? 'a new replica: the next push is a full sync to it (the change record of the old replica is not used for it)'
          : 'the change record is kept: the next push is a delta',
      )
    }
    return c
  }
}
