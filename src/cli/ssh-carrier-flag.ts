// `--ssh ssh2|openssh`: which SSH client carries the tunnels to the replica host. On `init` it
// is stored with the disk's settings; on `fullsync` and `push` it overrides them for one run.
import {Flags} from '@oclif/core'
import {SSH_CARRIERS} from '../core/psf/settings.js'

export const sshCarrierFlag = Flags.string({
  description:
    "SSH client: ssh2 (built in, the default) or openssh (the system's ssh, with the whole ssh_config: ProxyJump, certificates, ControlMaster, GSSAPI, FIDO keys)",
  options: [...SSH_CARRIERS],
})
