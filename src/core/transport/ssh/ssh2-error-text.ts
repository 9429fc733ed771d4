// ssh2 reports some failures only as text: a plain Error whose message is all there is (no
// code, no class; `level` says only "handshake"). vdrep's decisions on those failures read
// the text here and nowhere else, each match in one named function, pinned by
// test/core/transport/ssh/ssh2-error-text.test.ts with the messages of the ssh2 release we
// install (node_modules/ssh2/lib/utils.js, protocol/kex.js, protocol/keyParser.js). If ssh2
// rewords one, that test fails instead of a user getting the wrong error.

/** ssh2 refused our algorithm settings before connecting (utils.js: `Unsupported algorithm: x`). */
export function isUnsupportedAlgorithm(err: unknown): boolean {
  return /Unsupported algorithm/.test(messageOf(err))
}

/** The handshake found no host key type both sides accept (kex.js: `no matching host key format`). */
export function isNoCommonHostKey(err: unknown): boolean {
  return /host key/i.test(messageOf(err))
}

/** The handshake found no cipher both sides accept (kex.js: `no matching C->S cipher`). */
export function isNoCommonCipher(err: unknown): boolean {
  return /cipher/i.test(messageOf(err))
}

/** The key parser needs a passphrase (keyParser.js: `Encrypted ... key detected, but no passphrase given`). */
export function isEncryptedKey(err: unknown): boolean {
  return /passphrase|encrypted/i.test(messageOf(err))
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
