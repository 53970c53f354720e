/** Settings objects for tests. */
import { parseSettings, type Settings, SettingsError, type SettingsInput } from "../../lib/settings.js";

/** A real ed25519 public key (its private half was discarded). */
export const REAL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGW+r0S3uhGzT7JfMpHhr9SEToqgWTg8SQLYeg96X2fB";

export function baseSettings(overrides: Partial<SettingsInput> = {}): SettingsInput {
  return {
    project: "test-project",
    region: "europe-west1",
    zone: "europe-west1-b",
    flake: ".",
    imageBucket: "test-project-images",
    images: { base: { nixosConfiguration: "gce-base", family: "nixos-base" } },
    hosts: {
      vm: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example"] },
    },
    ...overrides,
  };
}

export function settings(overrides: Partial<SettingsInput> = {}): Settings {
  return parseSettings(baseSettings(overrides), "test");
}

/** The problem lines parseSettings reports for `raw`; [] when it is valid. Any other error is rethrown. */
export function settingsProblems(raw: unknown): string[] {
  try {
    parseSettings(raw, "infra.json");
    return [];
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    return e.problems;
  }
}
