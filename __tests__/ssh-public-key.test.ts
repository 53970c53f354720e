/**
 * SSH public key lines, checked by shape: one row per rule, and keys made by
 * the real ssh-keygen (where installed) pass.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSettings } from "../lib/settings.js";
import { sshPublicKeyProblem } from "../lib/ssh-public-key.js";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings, settingsProblems } from "./helpers/settings.js";
import { testWithTools } from "./helpers/tools.js";

const ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example";
const [, ED_DATA] = ED.split(" ");
/** The key infra.json once carried: cut when copied (67 base64 characters). */
const CUT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHN0YW5kLWluLWtleS1yZXBsYWNlLW1lLXBsZWFzZQ deploy@example";

describe("sshPublicKeyProblem", () => {
  test.each([
    ["a private key", "-----BEGIN OPENSSH PRIVATE KEY-----", "this is a private key; never put it here"],
    ["not <type> <key>", ED_DATA, 'must be "<type> <base64 key> [comment]", e.g. the line of ~/.ssh/id_ed25519.pub'],
    ["a type sshd does not take", `ssh-dss ${ED_DATA}`, expect.stringMatching(/^unsupported key type "ssh-dss" \(supported: ssh-ed25519, ssh-rsa, /)],
    ["base64 cut or damaged", CUT, "the key data is not whole base64 (cut or damaged when copied?)"],
    ["key data of another type", `ssh-rsa ${ED_DATA}`, "the key data is not a ssh-rsa key (its first field names another type, or it is damaged)"],
  ])("%s is refused", (_rule, line, problem) => {
    expect(sshPublicKeyProblem(line)).toEqual(problem);
  });

  test("a key line with or without a comment passes", () => {
    expect([ED, ED.split(" ").slice(0, 2).join(" ")].map(sshPublicKeyProblem)).toEqual([undefined, undefined]);
  });

  testWithTools(["ssh-keygen"], "keys ssh-keygen makes pass (ed25519, rsa, ecdsa)", () => {
    const dir = mkdtempSync(join(tmpdir(), "ssh-keys-"));
    try {
      for (const type of ["ed25519", "rsa", "ecdsa"]) {
        execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "test@example", "-f", join(dir, type)]);
        const line = readFileSync(join(dir, `${type}.pub`), "utf8").trim();
        expect({ type, problem: sshPublicKeyProblem(line) }).toEqual({ type, problem: undefined });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("sshKeys in the settings", () => {
  test("the committed examples carry keys that pass", () => {
    for (const file of ["infra.json", "examples/offline.json"]) {
      const keys = Object.values(loadSettings(join(REPO_ROOT, file)).hosts).flatMap((h) => h.sshKeys);
      expect({ file, count: keys.length > 0, problems: keys.filter(sshPublicKeyProblem) }).toEqual({ file, count: true, problems: [] });
    }
  });

  test("a damaged key is refused with its path, without quoting the value", () => {
    const raw = baseSettings();
    raw.hosts!.vm.sshKeys = [ED, CUT];
    expect(settingsProblems(raw)).toEqual(["hosts.vm.sshKeys[1]: the key data is not whole base64 (cut or damaged when copied?) (paste the whole line of a .pub file)"]);
  });
});
