/**
 * OpenSSH public key lines ("ssh-ed25519 AAAA… comment"), parsed for real: the
 * base64 blob is read in the SSH wire format (RFC 4253 section 6.6, RFC 5656,
 * RFC 8709 and OpenSSH's PROTOCOL.u2f), so a truncated, padded or mislabelled
 * key is refused at synth instead of being silently ignored by sshd on the host.
 */
import { createPublicKey } from "node:crypto";

/** The key types sshd accepts in authorized_keys without options (no DSA: OpenSSH 9.8 dropped it). */
export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

export interface SshPublicKey {
  readonly type: SshKeyType;
  /** Key size in bits (RSA modulus, curve size, 256 for Ed25519). */
  readonly bits: number;
  readonly comment: string;
}

/** Thrown with one line saying what is wrong with the key. */
export class SshPublicKeyError extends Error {}

/** OpenSSH refuses RSA keys below this modulus size (SSH_RSA_MINIMUM_MODULUS_SIZE). */
const RSA_MIN_BITS = 1024;

/** Curves of the ECDSA types: the wire name, node's JWK name, and the field size in bytes. */
const CURVES: Record<string, { jwk: string; bytes: number; bits: number }> = {
  nistp256: { jwk: "P-256", bytes: 32, bits: 256 },
  nistp384: { jwk: "P-384", bytes: 48, bits: 384 },
  nistp521: { jwk: "P-521", bytes: 66, bits: 521 },
};

/** Sequential reader of SSH wire-format fields; every error says which field. */
class WireReader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}

  /** A uint32 length, then that many bytes. */
  bytes(field: string): Buffer {
    if (this.buf.length - this.offset < 4) {
      throw new SshPublicKeyError(`the key data ends before its ${field} (${this.buf.length - this.offset} bytes left, need a 4-byte length)`);
    }
    const length = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    const left = this.buf.length - this.offset;
    if (length > left) throw new SshPublicKeyError(`${field}: declared length ${length} but ${left} bytes follow`);
    const out = this.buf.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  string(field: string): string {
    return this.bytes(field).toString("latin1");
  }

  /** A positive mpint (RFC 4251 section 5): no needless leading zero byte, sign bit clear. */
  positiveMpint(field: string): Buffer {
    const b = this.bytes(field);
    if (b.length === 0) throw new SshPublicKeyError(`${field} is zero`);
    if (b[0] & 0x80) throw new SshPublicKeyError(`${field} is negative`);
    if (b[0] === 0 && (b.length === 1 || !(b[1] & 0x80))) throw new SshPublicKeyError(`${field} has a needless leading zero byte`);
    return b[0] === 0 ? b.subarray(1) : b;
  }

  end(): void {
    const left = this.buf.length - this.offset;
    if (left !== 0) throw new SshPublicKeyError(`${left} unexpected bytes after the key`);
  }
}

function bitLength(magnitude: Buffer): number {
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]));
}

const b64url = (b: Buffer) => b.toString("base64url");

/** An uncompressed point on the curve, checked by node's crypto (OpenSSL). */
function checkEcPoint(curveName: string, point: Buffer): number {
  const curve = CURVES[curveName];
  if (!curve) throw new SshPublicKeyError(`unknown curve "${curveName}"`);
  if (point.length !== 1 + 2 * curve.bytes || point[0] !== 0x04) {
    throw new SshPublicKeyError(`the ${curveName} point must be ${1 + 2 * curve.bytes} bytes starting with 0x04 (got ${point.length} bytes)`);
  }
  try {
    createPublicKey({
      key: { kty: "EC", crv: curve.jwk, x: b64url(point.subarray(1, 1 + curve.bytes)), y: b64url(point.subarray(1 + curve.bytes)) },
      format: "jwk",
    });
  } catch {
    throw new SshPublicKeyError(`the ${curveName} point is not on the curve`);
  }
  return curve.bits;
}

/** Reads the type-specific fields after the type string; returns the key size in bits. */
function readKeyFields(type: SshKeyType, r: WireReader): number {
  switch (type) {
    case "ssh-ed25519":
    case "sk-ssh-ed25519@openssh.com": {
      const key = r.bytes("Ed25519 key");
      if (key.length !== 32) throw new SshPublicKeyError(`the Ed25519 key is ${key.length} bytes, not 32`);
      if (type === "sk-ssh-ed25519@openssh.com") r.string("security key application");
      return 256;
    }
    case "ssh-rsa": {
      r.positiveMpint("RSA exponent e");
      const n = r.positiveMpint("RSA modulus n");
      const bits = bitLength(n);
      if (bits < RSA_MIN_BITS) throw new SshPublicKeyError(`the RSA modulus has ${bits} bits; OpenSSH refuses fewer than ${RSA_MIN_BITS}`);
      return bits;
    }
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384":
    case "ecdsa-sha2-nistp521":
    case "sk-ecdsa-sha2-nistp256@openssh.com": {
      const declared = /nistp\d+/.exec(type)![0];
      const curve = r.string("curve name");
      if (curve !== declared) throw new SshPublicKeyError(`the key's curve is "${curve}" but its type ${type} needs "${declared}"`);
      const bits = checkEcPoint(curve, r.bytes("curve point"));
      if (type === "sk-ecdsa-sha2-nistp256@openssh.com") r.string("security key application");
      return bits;
    }
  }
}

/**
 * Parses one OpenSSH public key line: type, base64 key data, optional comment.
 * Throws SshPublicKeyError with one line saying what is wrong.
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  if (/PRIVATE KEY/.test(line)) throw new SshPublicKeyError("this is a private key; never put it here");
  if (/[\r\n]/.test(line)) throw new SshPublicKeyError("must be a single line");
  const match = /^(\S+) (\S+)(?: (.*))?$/.exec(line);
  if (!match) throw new SshPublicKeyError('must be "<type> <base64 key> [comment]", e.g. the line of ~/.ssh/id_ed25519.pub');
  const [, declared, data, comment = ""] = match;
  if (!(SSH_KEY_TYPES as readonly string[]).includes(declared)) {
    throw new SshPublicKeyError(`unsupported key type "${declared}" (supported: ${SSH_KEY_TYPES.join(", ")})`);
  }
  const type = declared as SshKeyType;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data)) throw new SshPublicKeyError("the key data is not base64 (damaged when copied?)");
  // The structure is read first, from a lenient decode: "declared length 51 but
  // 40 bytes follow" says more about a truncated key than "bad padding" does.
  const blob = Buffer.from(data, "base64");
  const r = new WireReader(blob);
  const inner = r.string("key type");
  if (inner !== type) throw new SshPublicKeyError(`the line says ${type} but the key data holds "${inner}"`);
  const bits = readKeyFields(type, r);
  r.end();
  // OpenSSH's decoder (b64_pton) refuses missing padding and stray bits.
  if (blob.toString("base64") !== data) throw new SshPublicKeyError("the key data is not canonical base64 (missing padding or stray bits)");
  return { type, bits, comment };
}

/** The problem with a key line, or undefined when it is a valid public key. */
export function sshPublicKeyProblem(line: string): string | undefined {
  try {
    parseSshPublicKey(line);
    return undefined;
  } catch (e) {
    if (e instanceof SshPublicKeyError) return e.message;
    throw e;
  }
}
