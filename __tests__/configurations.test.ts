/**
 * Machine types (which exist, and what they need from their images) and the
 * rules that let the flake give each NixOS configuration one answer. What a
 * configuration gets is the flake's to compute (flake.test.ts).
 */
import { execFileSync } from "node:child_process";
import { BOOT_DISK_TYPES, machineSeries } from "../lib/machine-types.js";
import type { SettingsInput } from "../lib/settings.js";
import { baseSettings, settingsProblems } from "./helpers/settings.js";
import { findTool } from "./helpers/tools.js";

/** One example of each form nixGc.schedule takes. */
const FORMS = ["daily", "weekly", "monthly", "04:00", "Sun 03:15", "*-*-* 03:15:00", "Sat *-*-* 23:59:59"];

const problems = settingsProblems;

/** A host of that machine type; series that boot only from Hyperdisk get it unless diskType says otherwise. */
function withHost(machineType: string, guestOsFeatures?: string[], diskType?: string): SettingsInput {
  const raw = baseSettings();
  raw.images = { base: { nixosConfiguration: "gce-base", family: "nixos-base", ...(guestOsFeatures ? { guestOsFeatures: guestOsFeatures as never } : {}) } };
  const hyperdiskOnly = BOOT_DISK_TYPES[machineSeries(machineType)]?.includes("pd-balanced") === false;
  raw.hosts = { db: { ...raw.hosts!.vm, machineType, diskType: (diskType ?? (hyperdiskOnly ? "hyperdisk-balanced" : "pd-balanced")) as never } };
  return raw;
}

describe("machine types", () => {
  test.each([
    ["a misspelt family", "e2-standrad-2", "e2-standard-2"],
    ["a size its series lacks (the next size up)", "n2-standard-3", "n2-standard-4"],
    ["an unknown series", "n9-standard-2", "n1-standard-2"],
  ])("%s is refused with the nearest machine type: %s", (_rule, machineType, nearest) => {
    expect(problems(withHost(machineType))).toEqual([
      `hosts.db.machineType: is not a GCE machine type (<series>-<family>-<vCPUs> such as e2-standard-2, or <series>-custom-<vCPUs>-<MiB>); did you mean "${nearest}"? (got "${machineType}")`,
    ]);
  });

  test("predefined, shared-core, local-SSD and custom shapes are taken", () => {
    for (const machineType of ["e2-standard-2", "e2-micro", "n2d-highcpu-224", "c3-standard-4-lssd", "n2-custom-4-8192", "custom-2-4096-ext", "e2-custom-medium-4096"]) {
      const features = machineType.startsWith("c3") ? ["GVNIC", "UEFI_COMPATIBLE"] : undefined;
      expect({ machineType, problems: problems(withHost(machineType, features)) }).toEqual({ machineType, problems: [] });
    }
  });

  test("an NVMe machine type on an image without GVNIC and UEFI_COMPATIBLE is refused, naming both settings", () => {
    expect(problems(withHost("c3-standard-4"))).toEqual([
      'hosts.db.machineType: c3-standard-4 boots from NVMe and needs images.base.guestOsFeatures to include "GVNIC" (gVNIC is its only network interface)',
      'hosts.db.machineType: c3-standard-4 boots from NVMe and needs images.base.guestOsFeatures to include "UEFI_COMPATIBLE" (GRUB cannot be installed on /dev/sda there; the image must boot with EFI)',
    ]);
  });

  test("a disk type the machine series cannot boot from is refused, naming diskType and the series", () => {
    expect(problems(withHost("n4-standard-2", ["GVNIC", "UEFI_COMPATIBLE"], "pd-balanced"))).toEqual([
      'hosts.db.diskType: "pd-balanced" is not a disk type of the N4 series (n4-standard-2); it takes "hyperdisk-balanced"',
    ]);
    expect(problems(withHost("e2-small", undefined, "hyperdisk-balanced"))).toEqual([
      'hosts.db.diskType: "hyperdisk-balanced" is not a disk type of the E2 series (e2-small); it takes "pd-standard", "pd-balanced", "pd-ssd"',
    ]);
    // A series the table does not list is not checked.
    expect(problems(withHost("c3-standard-4", ["GVNIC", "UEFI_COMPATIBLE"], "hyperdisk-balanced"))).toEqual([]);
  });

  test("an Arm machine type needs system aarch64-linux, and an aarch64 system needs an Arm machine type", () => {
    const armOnX86 = withHost("c4a-standard-4", ["GVNIC", "UEFI_COMPATIBLE"]);
    expect(problems(armOnX86)).toEqual([
      'hosts.db.machineType: c4a-standard-4 has Arm CPUs, but system is "x86_64-linux"; set system to "aarch64-linux" or pick an x86 machine type',
    ]);
    expect(problems({ ...armOnX86, system: "aarch64-linux" })).toEqual([]);
    expect(problems({ ...withHost("e2-small"), system: "aarch64-linux" })).toEqual([
      'hosts.db.machineType: e2-small has x86 CPUs, but system is "aarch64-linux"; pick an Arm machine type (t2a, c4a) or set system to "x86_64-linux"',
    ]);
  });
});

describe("one answer per NixOS configuration", () => {
  test("a configuration booted from an EFI image and a BIOS image is refused", () => {
    const raw = baseSettings({
      images: {
        base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["GVNIC", "UEFI_COMPATIBLE"] },
        old: { nixosConfiguration: "gce-base", family: "nixos-old" },
      },
      hosts: {
        a: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" },
        b: { nixosConfiguration: "vm", image: "old", machineType: "e2-small" },
      },
    });
    expect(problems(raw)).toEqual([
      'images.old.guestOsFeatures: configuration "gce-base" boots with EFI from images base but without it from "old"; add "UEFI_COMPATIBLE" here or give the hosts their own configurations',
      'images.old.guestOsFeatures: configuration "vm" boots with EFI from images base but without it from "old"; add "UEFI_COMPATIBLE" here or give the hosts their own configurations',
    ]);
  });

  test("hosts sharing a configuration with different nixGc are refused", () => {
    const raw = baseSettings({
      hosts: {
        a: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" },
        b: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", nixGc: { schedule: "daily" } },
      },
    });
    expect(problems(raw)).toEqual([
      'hosts.b.nixGc: differs from host "a", which runs the same configuration "vm"; make them equal or give the hosts their own configurations',
    ]);
  });
});

describe("nixGc", () => {
  test("each form the schedule takes is taken, and is a calendar event systemd takes", () => {
    for (const schedule of FORMS) expect({ schedule, problems: problems(baseSettings({ nixGc: { keepGenerations: 5, schedule } })) }).toEqual({ schedule, problems: [] });
    // Where this machine has systemd, it judges too (the hosts' own systemd judges at build time: flake.test.ts).
    if (findTool("systemd-analyze")) for (const schedule of FORMS) execFileSync("systemd-analyze", ["calendar", schedule], { stdio: "ignore" });
  });

  test("any other schedule is refused, at the top or per host, saying where a full calendar event goes", () => {
    const message = (key: string, value: string) =>
      `${key}: must be daily, weekly, monthly or "[Mon..Sun] [*-*-*] HH:MM[:SS]" such as "Sun 03:15"; for another systemd calendar event, set nix.gc.dates in the host's NixOS module (got "${value}")`;
    expect(problems(baseSettings({ nixGc: { keepGenerations: 5, schedule: "Sun 25:00" } }))).toEqual([message("nixGc.schedule", "Sun 25:00")]);
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).nixGc = { schedule: "weekly; rm -rf /" };
    expect(problems(raw)).toEqual([message("hosts.vm.nixGc.schedule", "weekly; rm -rf /")]);
  });

  test("keepGenerations is a whole number from 1; unknown keys are named", () => {
    expect(problems(baseSettings({ nixGc: { keepGenerations: 0, schedule: "weekly" } }))).toEqual(["nixGc.keepGenerations: must be at least 1 (got 0)"]);
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).nixGc = { keep: 3 };
    expect(problems(raw)).toEqual(["hosts.vm.nixGc.keep: unknown key (remove it or check its spelling)"]);
  });
});
