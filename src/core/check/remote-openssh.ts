// `vdrep check` for a disk whose settings choose the OpenSSH carrier (`--ssh openssh`). The
// system's ssh reaches the host through the user's ssh_config (HostName, ProxyJump, a
// ControlMaster), so vdrep cannot resolve the name or open the SSH port itself without
// testing a path the sync never takes: those steps are left to ssh, and the first tunnel
// (to the delta port) proves the host key (StrictHostKeyChecking=yes against the disk's
// known_hosts) and the login. The receiver, path and room steps are the ssh2 path's.
import {asVdrepError} from '../errors.js'
import type {PsfHeader} from '../psf/header.js'
import type {Target} from '../target/target.js'
import {OpenSshTransport} from '../transport/openssh/openssh-transport.js'
import {sshConfigFile, sshKeepalive} from '../transport/ssh-connect.js'
import type {Checklist} from './checklist.js'
import {AFTER_LOGIN, checkReceiver, type RemoteCheckOptions} from './remote.js'

type SshTarget = Extract<Target, {kind: 'ssh'}>

export async function checkOpenSshTarget(t: SshTarget, header: PsfHeader, list: Checklist, opts: RemoteCheckOptions): Promise<void> {
  const ssh = header.settings.ssh ?? {}
  list.skip(['host', 'ssh-port'], 'the OpenSSH carrier reaches the host through ssh_config (HostName, ProxyJump): ssh checks it at login')
  const transport = new OpenSshTransport({
    host: t.host,
    user: t.user ?? ssh.user,
    port: t.port ?? ssh.port,
    identityFiles: ssh.identityFiles,
    knownHostsFile: ssh.knownHostsFile,
    acceptNewHostKey: false,
    configFile: sshConfigFile(),
    keepaliveSeconds: sshKeepalive(opts.timeoutMs).keepaliveIntervalMs / 1000,
    log: opts.log,
  })
  try {
    try {
      // A tunnel that opens, or one sshd refuses because nothing listens there, both mean ssh
      // accepted the host key and logged in.
      ;(await transport.openStream(header.settings.deltaPort)).destroy()
    } catch (err) {
      const e = asVdrepError(err)
      if (e.code !== 'TUNNEL_REFUSED') {
        if (e.code.startsWith('HOST_KEY') || e.code.startsWith('KNOWN_HOSTS')) {
          list.fail('host-key', e.message, e.hint ?? `compare the host's key with the replica host's and add it to ${ssh.knownHostsFile ?? 'known_hosts'}`)
          list.skip(['login'], 'the host key was refused')
        } else {
          list.skip(['host-key'], 'ssh did not get as far as the host key, or did not say')
          list.fail(
            'login',
            e.message,
            e.hint ?? 'check the user, the identity file (--identity), the ssh_config entry and authorized_keys on the replica host',
          )
        }
        list.skip(AFTER_LOGIN, 'no login')
        return
      }
    }
    list.ok('host-key', `ssh accepted the host key (StrictHostKeyChecking=yes${ssh.knownHostsFile ? `, ${ssh.knownHostsFile}` : ''})`)
    list.ok('login', `logged in as ${transport.label} with ssh`)
    await checkReceiver(transport, t, header, list, opts)
  } finally {
    await transport.close()
  }
}
