/**
 * OpenSSH public key lines ("ssh-ed25519 AAAA… comment"), checked by shape:
 * a type sshd takes, base64 that decodes exactly, and key data that starts
 * with the same type (RFC 4253 section 6.6). sshd silently ignores a damaged
 * line, so a key cut or mangled when copied is refused here; what the key
 * data holds beyond its type (curve points, RSA size) is sshd's to judge.
 */

/** Types sshd accepts in authorized_keys (no DSA: OpenSSH 9.8 dropped it). */
const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** What is wrong with a key line, or undefined when it has the shape of a public key. */
export function sshPublicKeyProblem(line: string): string | undefined {
  if (/PRIVATE KEY/.test(line)) return "this is a private key; never put it here";
  const match = /^(\S+) (\S+)(?: .*)?$/.exec(line);
  if (!match) return 'must be "<type> <base64 key> [comment]", e.g. the line of ~/.ssh/id_ed25519.pub';
  const [, type, data] = match;
  if (!SSH_KEY_TYPES.includes(type)) return `unsupported key type "${type}" (supported: ${SSH_KEY_TYPES.join(", ")})`;
  // Buffer.from drops what is not base64; encoding back shows any loss, a missing "=" included.
  const blob = Buffer.from(data, "base64");
  if (blob.toString("base64") !== data) return "the key data is not whole base64 (cut or damaged when copied?)";
  const typeLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (typeLength !== type.length || blob.toString("latin1", 4, 4 + typeLength) !== type) {
    return `the key data is not a ${type} key (its first field names another type, or it is damaged)`;
  }
  return undefined;
}
