// `--state-dir DIR`, shared by every command that takes a disk (init, fullsync, push, track,
// status): where the disk's .psf and the files named after it live. Each command must find the
// record where `init` put it, so the flag (or VDREP_STATE_DIR) must be the same for all of them;
// `init` puts it into the cron line it prints.
import {Flags} from '@oclif/core'
import {DEFAULT_STATE_DIR, STATE_DIR_ENV} from '../core/psf/state-location.js'

export const stateDirFlag = Flags.string({
  description: `keep the .psf (and the disk lock, control socket, copy-on-write file) of the disk under DIR, named by the disk's real path, instead of beside the disk; a block device's state is under ${DEFAULT_STATE_DIR} without it. Default: $${STATE_DIR_ENV}`,
  helpValue: 'DIR',
})
