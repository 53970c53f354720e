/**
 * Machine types against their images' guest OS features, and what each NixOS
 * configuration gets from the settings (deploy keys, EFI, nixGc), with the
 * errors synth gives when the settings disagree.
 */
import { configurationFacts } from "../lib/configurations.js";
import { BOOT_DISK_TYPES, bootsFromNvme, machineSeries } from "../lib/machine-types.js";
import type { SettingsInput } from "../lib/settings.js";
import { baseSettings, settings, settingsProblems } from "./helpers/settings.js";

const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE+H2rOXenM9JDtjlEpNNyxxCmUw597vURL0PQuLolAs deploy@example";

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
  test("the series is the machine type's prefix", () => {
    expect(["c3-standard-4", "e2-small", "c4a-highmem-8", "n2d-custom-2-4096"].map(machineSeries)).toEqual(["c3", "e2", "c4a", "n2d"]);
    expect(["c3-standard-4", "c3d-standard-8", "c4-standard-2", "n4-standard-2", "h3-standard-88", "z3-highmem-88", "a3-highgpu-1g"].every(bootsFromNvme)).toBe(true);
    expect(["e2-small", "n2-standard-2", "n2d-standard-2", "n1-standard-1", "c2-standard-4", "t2d-standard-1"].some(bootsFromNvme)).toBe(false);
  });

  test("an NVMe machine type on an image without GVNIC and UEFI_COMPATIBLE is refused, naming both settings", () => {
    expect(problems(withHost("c3-standard-4"))).toEqual([
      'hosts.db.machineType: c3-standard-4 boots from NVMe and needs images.base.guestOsFeatures to include "GVNIC" (gVNIC is its only network interface)',
      'hosts.db.machineType: c3-standard-4 boots from NVMe and needs images.base.guestOsFeatures to include "UEFI_COMPATIBLE" (GRUB cannot be installed on /dev/sda there; the image must boot with EFI)',
    ]);
    expect(problems(withHost("n4-standard-2", ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC"]))).toEqual([
      expect.stringMatching(/^hosts\.db\.machineType: n4-standard-2 boots from NVMe and needs images\.base\.guestOsFeatures to include "UEFI_COMPATIBLE"/),
    ]);
  });

  test("with both features, or on a SCSI machine type, the settings are accepted", () => {
    expect(problems(withHost("c3-standard-4", ["GVNIC", "UEFI_COMPATIBLE"]))).toEqual([]);
    expect(problems(withHost("e2-standard-2"))).toEqual([]);
    expect(problems(withHost("e2-standard-2", ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC", "UEFI_COMPATIBLE"]))).toEqual([]);
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
    expect(problems({ ...withHost("t2a-standard-1", ["GVNIC", "UEFI_COMPATIBLE"]), system: "aarch64-linux" })).toEqual([]);
    expect(problems({ ...withHost("e2-small"), system: "aarch64-linux" })).toEqual([
      'hosts.db.machineType: e2-small has x86 CPUs, but system is "aarch64-linux"; pick an Arm machine type (t2a, c4a) or set system to "x86_64-linux"',
    ]);
  });
});

describe("what each NixOS configuration gets", () => {
  test("defaults: every configuration gets nixGc 5 generations weekly, BIOS boot, and the keys of the hosts that run or boot it", () => {
    const s = settings();
    expect(s.nixGc).toEqual({ keepGenerations: 5, schedule: "weekly" });
    const { facts, problems: found } = configurationFacts(s);
    expect(found).toEqual([]);
    expect(facts).toEqual({
      // The image configuration: the host vm boots it first, so it carries vm's keys.
      "gce-base": { deployKeys: [KEY_A], efi: false, nixGc: { keepGenerations: 5, schedule: "weekly" } },
      vm: { deployKeys: [KEY_A], efi: false, nixGc: { keepGenerations: 5, schedule: "weekly" } },
    });
  });

  test("keys are the union, sorted, over hosts sharing a configuration or an image; nixGc overrides apply per host", () => {
    const s = settings({
      nixGc: { keepGenerations: 3, schedule: "daily" },
      images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC", "UEFI_COMPATIBLE"] } },
      hosts: {
        a: { nixosConfiguration: "vm", image: "base", machineType: "c3-standard-4", sshKeys: [KEY_B] },
        b: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: [KEY_A, KEY_B] },
        c: { nixosConfiguration: "db", image: "base", machineType: "e2-small", sshKeys: [], nixGc: { keepGenerations: 10 } },
      },
    });
    const { facts, problems: found } = configurationFacts(s);
    expect(found).toEqual([]);
    expect(facts["gce-base"]).toEqual({ deployKeys: [KEY_A, KEY_B].sort(), efi: true, nixGc: { keepGenerations: 3, schedule: "daily" } });
    expect(facts.vm).toEqual({ deployKeys: [KEY_A, KEY_B].sort(), efi: true, nixGc: { keepGenerations: 3, schedule: "daily" } });
    expect(facts.db).toEqual({ deployKeys: [], efi: true, nixGc: { keepGenerations: 10, schedule: "daily" } });
  });

  test("linear in the fleet: 2,000 hosts each with its own configuration are each read a few times, not once per configuration", () => {
    // Counting reads, not time: each filter over all hosts per configuration made this 8 million reads (0.7 s) at synth, twice.
    const hosts: Record<string, { nixosConfiguration: string; image: string; machineType: string; sshKeys: string[] }> = {};
    for (let i = 0; i < 2000; i++) hosts[`h${i}`] = { nixosConfiguration: `c${i}`, image: "base", machineType: "e2-small", sshKeys: [KEY_A] };
    let reads = 0;
    const counted = new Proxy(hosts, { get: (target, key, receiver) => (reads++, Reflect.get(target, key, receiver)) });
    const images = { base: { nixosConfiguration: "gce-base", guestOsFeatures: [] } };
    const { facts, problems: found } = configurationFacts({ system: "x86_64-linux", nixGc: { keepGenerations: 5, schedule: "weekly" }, images, hosts: counted });
    expect(found).toEqual([]);
    expect(Object.keys(facts)).toHaveLength(2001);
    expect(facts["gce-base"].deployKeys).toEqual([KEY_A]);
    expect(facts.c1999).toEqual({ deployKeys: [KEY_A], efi: false, nixGc: { keepGenerations: 5, schedule: "weekly" } });
    expect(reads).toBeLessThan(20 * 2000);
  });

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

  test("a misspelt schedule names the word, the key and the fix, on one line", () => {
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).nixGc = { schedule: "weeky" };
    expect(problems(raw)).toEqual([
      'hosts.vm.nixGc.schedule: is not a systemd calendar event: "weeky" is neither a weekday nor one of minutely, hourly, daily, weekly, monthly, yearly, annually, quarterly, semiannually; e.g. weekly or Sun 03:00 (got "weeky")',
    ]);
  });

  test("nixGc values are checked", () => {
    expect(problems(baseSettings({ nixGc: { keepGenerations: 0, schedule: "weekly; rm -rf /" } }))).toEqual([
      "nixGc.keepGenerations: Too small: expected number to be >=1",
      'nixGc.schedule: must be a systemd calendar event such as weekly or Sun *-*-* 03:15:00 (got "weekly; rm -rf /")',
    ]);
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).nixGc = { keep: 3 };
    expect(problems(raw)).toEqual(["hosts.vm.nixGc.keep: unknown key (remove it or check its spelling)"]);
  });
});
