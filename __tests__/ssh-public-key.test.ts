/**
 * The OpenSSH public key parser, against keys made by the real ssh-keygen and
 * against damaged keys. Where ssh-keygen is installed, it judges every case
 * too (`ssh-keygen -l -f`), so the parser accepts what OpenSSH accepts.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSettings, parseSettings, SettingsError } from "../lib/settings.js";
import { parseSshPublicKey, sshPublicKeyProblem } from "../lib/ssh-public-key.js";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";
import { describeWithTool } from "./helpers/tools.js";

/** The malformed key infra.json carried before: its blob declares 32 key bytes but holds 30. */
const OLD_EXAMPLE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHN0YW5kLWluLWtleS1yZXBsYWNlLW1lLXBsZWFzZQ deploy@example";

/** SSH wire format: a uint32 length, then the bytes. */
const field = (b: Buffer | string) => {
  const data = typeof b === "string" ? Buffer.from(b, "latin1") : b;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
};
const line = (type: string, ...fields: Buffer[]) => `${type} ${Buffer.concat(fields).toString("base64")} test@example`;
const blobOf = (keyLine: string) => Buffer.from(keyLine.split(" ")[1], "base64");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ssh-keys-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** ssh-keygen's verdict on a key line: its bit count, or undefined when it refuses the key. */
function keygenBits(keyLine: string): number | undefined {
  const file = join(dir, "judge.pub");
  writeFileSync(file, `${keyLine}\n`);
  try {
    return Number(execFileSync("ssh-keygen", ["-l", "-f", file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split(" ")[0]);
  } catch {
    return undefined;
  }
}

function generate(type: string, bits?: number): string {
  const file = join(dir, `${type}-${bits ?? "default"}`);
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  execFileSync("ssh-keygen", ["-q", "-t", type, ...(bits ? ["-b", String(bits)] : []), "-N", "", "-C", "test@example", "-f", file]);
  return readFileSync(`${file}.pub`, "utf8").trim();
}

describeWithTool("ssh-keygen", "keys made by ssh-keygen", () => {
  test.each([
    ["ed25519", undefined, "ssh-ed25519", 256],
    ["rsa", 2048, "ssh-rsa", 2048],
    ["rsa", 3072, "ssh-rsa", 3072],
    ["ecdsa", 256, "ecdsa-sha2-nistp256", 256],
    ["ecdsa", 384, "ecdsa-sha2-nistp384", 384],
    ["ecdsa", 521, "ecdsa-sha2-nistp521", 521],
  ] as const)("%s %s parses as %s of %d bits, as ssh-keygen says", (kind, bits, type, size) => {
    const key = generate(kind, bits);
    expect(parseSshPublicKey(key)).toEqual({ type, bits: size, comment: "test@example" });
    expect(keygenBits(key)).toBe(size);
  });

  test("a key without a comment parses", () => {
    const key = generate("ed25519").split(" ").slice(0, 2).join(" ");
    expect(parseSshPublicKey(key).comment).toBe("");
  });

  test("every damaged key the parser refuses, ssh-keygen refuses too", () => {
    const ed = generate("ed25519");
    const rsa = generate("rsa", 2048);
    const ecdsa = generate("ecdsa", 256);
    const damaged = damagedKeys(ed, rsa, ecdsa);
    for (const [name, keyLine] of Object.entries(damaged)) {
      expect({ name, parser: sshPublicKeyProblem(keyLine) === undefined }).toEqual({ name, parser: false });
      expect({ name, keygen: keygenBits(keyLine) }).toEqual({ name, keygen: undefined });
    }
  });
});

/** Damaged variants of real keys, each with the one thing wrong its name says. */
function damagedKeys(ed: string, rsa: string, ecdsa: string): Record<string, string> {
  const edBlob = blobOf(ed);
  const ecBlob = blobOf(ecdsa);
  return {
    "the old example key": OLD_EXAMPLE,
    "truncated blob": `ssh-ed25519 ${edBlob.subarray(0, edBlob.length - 4).toString("base64")}`,
    "trailing bytes": `ssh-ed25519 ${Buffer.concat([edBlob, Buffer.from([0, 0, 0, 0])]).toString("base64")}`,
    "type on the line differs from the blob": `ssh-rsa ${edBlob.toString("base64")}`,
    "31-byte Ed25519 key": line("ssh-ed25519", field("ssh-ed25519"), field(Buffer.alloc(31, 1))),
    "ECDSA curve name differs from the type": line("ecdsa-sha2-nistp256", field("ecdsa-sha2-nistp256"), field("nistp384"), ecBlob.subarray(4 + 19 + 4 + 8)),
    "ECDSA point off the curve": `ecdsa-sha2-nistp256 ${Buffer.concat([ecBlob.subarray(0, ecBlob.length - 1), Buffer.from([ecBlob[ecBlob.length - 1] ^ 1])]).toString("base64")}`,
    // The same point with the prefix of no SEC 1 form (0x04 is the uncompressed one OpenSSH writes).
    "ECDSA point prefix other than 0x04": `ecdsa-sha2-nistp256 ${Buffer.concat([ecBlob.subarray(0, 39), Buffer.from([0x05]), ecBlob.subarray(40)]).toString("base64")}`,
    "512-bit RSA": line("ssh-rsa", field("ssh-rsa"), field(Buffer.from([1, 0, 1])), field(Buffer.concat([Buffer.from([0x00, 0xc0]), Buffer.alloc(63, 0x11)]))),
    "missing padding": `ecdsa-sha2-nistp256 ${ecBlob.toString("base64").replace(/=+$/, "")}`,
    "base64 with a space": `ssh-rsa ${rsa.split(" ")[1].slice(0, 40)} ${rsa.split(" ")[1].slice(40)}`,
  };
}

describe("the parser's messages (no ssh-keygen needed)", () => {
  const ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example";
  const pk = blobOf(ed).subarray(4 + 11 + 4);

  test("a real key parses", () => {
    expect(parseSshPublicKey(ed)).toEqual({ type: "ssh-ed25519", bits: 256, comment: "test@example" });
  });

  test("the old example key: its declared length is not what follows", () => {
    expect(sshPublicKeyProblem(OLD_EXAMPLE)).toBe("Ed25519 key: declared length 32 but 30 bytes follow");
  });

  test("each kind of damage is named", () => {
    expect(sshPublicKeyProblem(`ssh-ed25519 ${Buffer.concat([blobOf(ed), Buffer.from([7])]).toString("base64")}`)).toBe("1 unexpected bytes after the key");
    expect(sshPublicKeyProblem(`ssh-rsa ${blobOf(ed).toString("base64")}`)).toBe('the line says ssh-rsa but the key data holds "ssh-ed25519"');
    expect(sshPublicKeyProblem(line("ssh-ed25519", field("ssh-ed25519"), field(pk.subarray(1))))).toBe("the Ed25519 key is 31 bytes, not 32");
    expect(sshPublicKeyProblem(line("ssh-ed25519", field("ssh-ed25519")))).toBe("the key data ends before its Ed25519 key (0 bytes left, need a 4-byte length)");
    const sk = line("sk-ssh-ed25519@openssh.com", field("sk-ssh-ed25519@openssh.com"), field(pk), field("ssh:"));
    expect(sk).toMatch(/= test@example$/);
    expect(sshPublicKeyProblem(sk.replace("= ", " "))).toBe(
      "the key data is not canonical base64 (missing padding or stray bits)",
    );
    expect(sshPublicKeyProblem("ssh-ed25519 AAAA%C3Nz")).toBe("the key data is not base64 (damaged when copied?)");
    expect(sshPublicKeyProblem("ssh-dss AAAAB3NzaC1kc3M=")).toMatch(/^unsupported key type "ssh-dss" \(supported: ssh-ed25519, ssh-rsa, /);
    expect(sshPublicKeyProblem("AAAAC3NzaC1lZDI1NTE5")).toMatch(/^must be "<type> <base64 key> \[comment\]"/);
    expect(sshPublicKeyProblem(`${ed}\n${ed}`)).toBe("must be a single line");
    expect(sshPublicKeyProblem("-----BEGIN OPENSSH PRIVATE KEY-----")).toBe("this is a private key; never put it here");
  });

  test("RSA: the exponent and modulus are positive mpints, and the modulus has at least 1024 bits", () => {
    const e = field(Buffer.from([1, 0, 1]));
    const modulus = (bytes: number) => field(Buffer.concat([Buffer.from([0x00, 0xc0]), Buffer.alloc(bytes - 1, 0x11)]));
    expect(parseSshPublicKey(line("ssh-rsa", field("ssh-rsa"), e, modulus(128))).bits).toBe(1024);
    expect(sshPublicKeyProblem(line("ssh-rsa", field("ssh-rsa"), e, modulus(64)))).toBe("the RSA modulus has 512 bits; OpenSSH refuses fewer than 1024");
    expect(sshPublicKeyProblem(line("ssh-rsa", field("ssh-rsa"), field(Buffer.from([0x81])), modulus(128)))).toBe("RSA exponent e is negative");
    expect(sshPublicKeyProblem(line("ssh-rsa", field("ssh-rsa"), field(Buffer.from([0, 1])), modulus(128)))).toBe("RSA exponent e has a needless leading zero byte");
  });

  test("security keys carry an application string after the key", () => {
    const sk = line("sk-ssh-ed25519@openssh.com", field("sk-ssh-ed25519@openssh.com"), field(pk), field("ssh:"));
    expect(parseSshPublicKey(sk)).toEqual({ type: "sk-ssh-ed25519@openssh.com", bits: 256, comment: "test@example" });
    expect(sshPublicKeyProblem(line("sk-ssh-ed25519@openssh.com", field("sk-ssh-ed25519@openssh.com"), field(pk)))).toBe(
      "the key data ends before its security key application (0 bytes left, need a 4-byte length)",
    );
  });

  test("ECDSA: the curve matches the type and the point lies on it", () => {
    // The generator of P-256 is a valid public point.
    const gx = Buffer.from("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296", "hex");
    const gy = Buffer.from("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5", "hex");
    const point = Buffer.concat([Buffer.from([4]), gx, gy]);
    const ec = (type: string, curve: string, p: Buffer, ...rest: Buffer[]) => line(type, field(type), field(curve), field(p), ...rest);
    expect(parseSshPublicKey(ec("ecdsa-sha2-nistp256", "nistp256", point)).bits).toBe(256);
    expect(parseSshPublicKey(ec("sk-ecdsa-sha2-nistp256@openssh.com", "nistp256", point, field("ssh:"))).type).toBe("sk-ecdsa-sha2-nistp256@openssh.com");
    expect(sshPublicKeyProblem(ec("ecdsa-sha2-nistp256", "nistp384", point))).toBe('the key\'s curve is "nistp384" but its type ecdsa-sha2-nistp256 needs "nistp256"');
    const offCurve = Buffer.from(point);
    offCurve[64] ^= 1;
    expect(sshPublicKeyProblem(ec("ecdsa-sha2-nistp256", "nistp256", offCurve))).toBe("the nistp256 point is not on the curve");
    expect(sshPublicKeyProblem(ec("ecdsa-sha2-nistp256", "nistp256", point.subarray(0, 33)))).toBe(
      "the nistp256 point must be 65 bytes starting with 0x04 (got 33 bytes)",
    );
    const prefixed = Buffer.from(point);
    prefixed[0] = 0x05;
    expect(sshPublicKeyProblem(ec("ecdsa-sha2-nistp256", "nistp256", prefixed))).toBe("the nistp256 point must be 65 bytes starting with 0x04 (got 65 bytes)");
  });
});

describe("sshKeys in the settings", () => {
  test("the committed examples carry real keys", () => {
    for (const file of ["infra.json", "examples/offline.json"]) {
      const s = loadSettings(join(REPO_ROOT, file));
      const keys = Object.values(s.hosts).flatMap((h) => h.sshKeys);
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) expect({ file, problem: sshPublicKeyProblem(key) }).toEqual({ file, problem: undefined });
    }
    for (const key of baseSettings().hosts!.vm.sshKeys!) expect(sshPublicKeyProblem(key)).toBeUndefined();
  });

  test("a damaged key is refused with its path and what is wrong", () => {
    const raw = baseSettings();
    raw.hosts!.vm.sshKeys = [raw.hosts!.vm.sshKeys![0], OLD_EXAMPLE];
    let problems: string[] = [];
    try {
      parseSettings(raw, "infra.json");
    } catch (e) {
      expect(e).toBeInstanceOf(SettingsError);
      problems = (e as SettingsError).problems;
    }
    expect(problems).toEqual(["hosts.vm.sshKeys[1]: Ed25519 key: declared length 32 but 30 bytes follow (paste the whole line of a .pub file)"]);
  });
});
