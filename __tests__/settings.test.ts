import { readFileSync } from "node:fs";
import { join } from "node:path";
import { stableJson } from "../lib/lock.js";
import { loadSettings, parseSettings, SettingsError, settingsJsonSchema } from "../lib/settings.js";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";

function problems(raw: unknown): string[] {
  try {
    parseSettings(raw, "infra.json");
  } catch (e) {
    expect(e).toBeInstanceOf(SettingsError);
    return (e as SettingsError).problems;
  }
  throw new Error("expected the settings to be rejected");
}

describe("settings", () => {
  test("the committed example infra.json is valid and fills defaults", () => {
    const s = loadSettings(join(REPO_ROOT, "infra.json"));
    expect(s.flake).toBe(".");
    expect(s.lockFile).toBe("infra.lock.json");
    expect(s.backend).toEqual({ type: "local" });
    expect(s.hosts.vm.diskSizeGb).toBe(20);
    expect(s.images.base.public).toBe(false);
  });

  test("an unknown key is named with its path", () => {
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).machinetype = "e2-small";
    (raw as Record<string, unknown>).imagebucket = "x";
    expect(problems(raw).sort()).toEqual([
      "hosts.vm.machinetype: unknown key (remove it or check its spelling)",
      "imagebucket: unknown key (remove it or check its spelling)",
    ]);
  });

  test("a wrong type names the key, the expected type and the value", () => {
    expect(problems({ ...baseSettings(), hosts: { vm: { ...baseSettings().hosts!.vm, diskSizeGb: "20" } } })).toEqual([
      'hosts.vm.diskSizeGb: expected number, got "20"',
    ]);
    expect(problems({ ...baseSettings(), project: undefined })).toEqual(["project: expected string (missing)"]);
  });

  test("names GCE would reject are refused with the rule", () => {
    const out = problems({
      ...baseSettings(),
      images: { base: { nixosConfiguration: "gce-base", family: "Nixos_Base" } },
    });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^images\.base\.family: must be 1-63 characters: lowercase letters, digits and '-'.*\(got "Nixos_Base"\)$/);
    expect(problems({ ...baseSettings(), imageBucket: "My.Bucket" })[0]).toMatch(/^imageBucket: must be 3-63 characters.*\(got "My.Bucket"\)$/);
    expect(problems({ ...baseSettings(), hosts: { Web_1: baseSettings().hosts!.vm } })[0]).toMatch(
      /^hosts\.Web_1: "Web_1" is not a valid id: must be 1-63 characters/,
    );
  });

  test("a dangling reference names the known ids", () => {
    const raw = baseSettings();
    raw.hosts!.vm.image = "bse";
    raw.hosts!.vm.runsOciImages = ["ingest"];
    expect(problems(raw)).toEqual(['hosts.vm.image: no image "bse" (known: base)', 'hosts.vm.runsOciImages[0]: no OCI image "ingest" (known: none)']);
  });

  test("private keys are refused", () => {
    const raw = baseSettings();
    raw.hosts!.vm.sshKeys = ["-----BEGIN OPENSSH PRIVATE KEY-----"];
    expect(problems(raw)).toEqual(["hosts.vm.sshKeys[0]: this is a private key; never put it here (paste the whole line of a .pub file)"]);
  });

  test("every problem is reported, one line each", () => {
    const out = problems({ ...baseSettings(), region: "Europe", zone: 3, extra: true });
    expect(out).toHaveLength(3);
  });

  test("unreadable and malformed files are named", () => {
    expect(() => loadSettings("/nonexistent/infra.json")).toThrow("/nonexistent/infra.json: 1 problem(s)\n  cannot read the settings file: ENOENT");
    expect(() => loadSettings(join(REPO_ROOT, "package-lock.json"))).toThrow(/unknown key/);
  });

  test("the published JSON Schema matches the settings schema (run npm run schema)", () => {
    const committed = readFileSync(join(REPO_ROOT, "infra.schema.json"), "utf8");
    expect(committed).toBe(stableJson(settingsJsonSchema()));
    const schema = JSON.parse(committed);
    expect(schema.required).toEqual(expect.arrayContaining(["project", "region", "zone", "imageBucket", "images"]));
    expect(schema.additionalProperties).toBe(false);
  });
});
