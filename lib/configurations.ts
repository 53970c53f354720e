/**
 * What each NixOS configuration gets from the settings. The flake computes
 * the same from infra.json (nixos/configurations.nix); this side checks, at
 * synth, that the settings give every configuration one answer, and the flake
 * test compares the two.
 *
 * A configuration is "used" by a host when it is the host's
 * nixosConfiguration, and by the hosts that boot an image built from it:
 * deploy-rs first logs in to the image's system, so the image carries the
 * keys of every host that boots it.
 */
import { z } from "zod";
import { machineTypeProblems } from "./machine-types.js";
import { calendarProblem } from "./systemd-calendar.js";

/** One line of letters, digits, *:-,./~@ (and +_ of time zones) and spaces. */
const CALENDAR_CHARACTERS = /^[A-Za-z0-9*:,./~@+_ -]+$/;

/**
 * systemd.time(7) calendar events, as systemd parses them (lib/systemd-calendar.ts):
 * an event systemd refuses would fail the host's activation at deploy time.
 */
const calendar = z
  .string()
  .regex(CALENDAR_CHARACTERS, { message: "must be a systemd calendar event such as weekly or Sun *-*-* 03:15:00" })
  .superRefine((event, ctx) => {
    // zod runs this after a failed regex too: one message per value.
    const problem = CALENDAR_CHARACTERS.test(event) ? calendarProblem(event) : undefined;
    if (problem) ctx.addIssue({ code: "custom", message: `is not a systemd calendar event: ${problem}` });
  });
const keepGenerations = z
  .number()
  .int()
  .min(1)
  .max(1000)
  .describe("System generations kept (the current one included); older ones are deleted before the store GC.");

const NIX_GC_DEFAULT = { keepGenerations: 5, schedule: "weekly" } as const;

/** Top-level `nixGc`. */
export const nixGcSchema = z
  .strictObject({
    keepGenerations: keepGenerations.default(NIX_GC_DEFAULT.keepGenerations),
    schedule: calendar.default(NIX_GC_DEFAULT.schedule).describe("When generations are pruned and the store collected (systemd calendar event)."),
  })
  .default(NIX_GC_DEFAULT)
  .describe("Bounded system generations and store garbage collection on every host.");

/** `hosts.<id>.nixGc`: overrides the top-level keys it names. */
export const hostNixGcSchema = z
  .strictObject({ keepGenerations: keepGenerations.optional(), schedule: calendar.optional() })
  .optional()
  .describe("Overrides of the top-level nixGc for this host. Hosts sharing a nixosConfiguration must agree.");

export interface NixGc {
  readonly keepGenerations: number;
  readonly schedule: string;
}

/** The parts of the settings this file reads (a subset of Settings, so tests can pass less). */
export interface ConfigurationSettings {
  /** Nix system of every host: "x86_64-linux" or "aarch64-linux". */
  readonly system: string;
  readonly nixGc: NixGc;
  readonly images: Record<string, { readonly nixosConfiguration: string; readonly guestOsFeatures: readonly string[] }>;
  readonly hosts: Record<
    string,
    {
      readonly nixosConfiguration: string;
      readonly image: string;
      readonly machineType: string;
      readonly sshKeys: readonly string[];
      readonly nixGc?: Partial<NixGc>;
      readonly secrets?: Readonly<Record<string, SecretFile>>;
    }
  >;
}

/** How a host writes one secret: /run/secrets/<name>'s owner and mode. */
export interface SecretFile {
  readonly owner: string;
  readonly mode: string;
}

/** What the flake gives one NixOS configuration. */
export interface ConfigurationFacts {
  /** Keys of the deploy user: those of every host that runs or first boots this configuration, sorted, once each. */
  readonly deployKeys: string[];
  /** virtualisation.googleComputeImage.efi: the images it is, or that its hosts boot, are UEFI_COMPATIBLE. */
  readonly efi: boolean;
  readonly nixGc: NixGc;
  /** infra.secrets: the secrets of the hosts that run it (they must agree), none for a configuration no host runs. */
  readonly secrets: Readonly<Record<string, SecretFile>>;
}

function hostNixGc(s: ConfigurationSettings, hostId: string): NixGc {
  return { ...s.nixGc, ...s.hosts[hostId].nixGc };
}

/** Equal for equal secret lists, whatever the order of their keys. */
const stableKey = (secrets: Readonly<Record<string, SecretFile>>) =>
  JSON.stringify(Object.entries(secrets).sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, f]) => [name, f.owner, f.mode]));

const uefi = (features: readonly string[]) => features.includes("UEFI_COMPATIBLE");

/** Ids by key, in the order given; pairs without a key are left out. */
function groupBy(pairs: Array<[key: string | undefined, id: string]>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const [key, id] of pairs) {
    if (key === undefined) continue;
    const group = groups.get(key);
    if (group) group.push(id);
    else groups.set(key, [id]);
  }
  return groups;
}

/** Facts per configuration name, and one problem per setting that gives a configuration two answers. */
export function configurationFacts(s: ConfigurationSettings): {
  facts: Record<string, ConfigurationFacts>;
  problems: Array<{ path: string[]; message: string }>;
} {
  const problems: Array<{ path: string[]; message: string }> = [];
  const names = [...new Set([...Object.values(s.images), ...Object.values(s.hosts)].map((e) => e.nixosConfiguration))].sort();
  // Indexed once: a fleet where every host has its own configuration made a
  // filter over all hosts per configuration quadratic (0.7 s at 2,000 hosts).
  const hostIds = Object.keys(s.hosts);
  const runsOf = groupBy(hostIds.map((id) => [s.hosts[id].nixosConfiguration, id]));
  const bootsOf = groupBy(hostIds.map((id) => [s.images[s.hosts[id].image]?.nixosConfiguration, id]));
  const imagesOf = groupBy(Object.keys(s.images).map((id) => [s.images[id].nixosConfiguration, id]));
  const facts: Record<string, ConfigurationFacts> = {};
  for (const name of names) {
    const runs = runsOf.get(name) ?? [];
    const boots = bootsOf.get(name) ?? [];
    const deployKeys = [...new Set([...runs, ...boots].flatMap((id) => s.hosts[id].sshKeys))].sort();

    // The images that are this configuration, and those its hosts boot from:
    // a host's system must install its boot loader the way its image does.
    const imageIds = [...(imagesOf.get(name) ?? []), ...runs.map((id) => s.hosts[id].image).filter((id) => id in s.images)];
    const efiImages = [...new Set(imageIds)].sort();
    const efi = efiImages.some((id) => uefi(s.images[id].guestOsFeatures));
    const bios = efiImages.filter((id) => !uefi(s.images[id].guestOsFeatures));
    if (efi && bios.length > 0) {
      const withUefi = efiImages.filter((id) => uefi(s.images[id].guestOsFeatures));
      for (const id of bios) {
        problems.push({
          path: ["images", id, "guestOsFeatures"],
          message: `configuration "${name}" boots with EFI from images ${withUefi.join(", ")} but without it from "${id}"; add "UEFI_COMPATIBLE" here or give the hosts their own configurations`,
        });
      }
    }

    const gcs = runs.map((id) => ({ id, gc: hostNixGc(s, id) }));
    const nixGc = gcs[0]?.gc ?? s.nixGc;
    for (const { id, gc } of gcs.slice(1)) {
      if (gc.keepGenerations !== nixGc.keepGenerations || gc.schedule !== nixGc.schedule) {
        problems.push({
          path: ["hosts", id, "nixGc"],
          message: `differs from host "${gcs[0].id}", which runs the same configuration "${name}"; make them equal or give the hosts their own configurations`,
        });
      }
    }
    // A host fetches only what it was granted: hosts sharing a configuration share its secret list.
    const secrets = runs.length ? (s.hosts[runs[0]].secrets ?? {}) : {};
    for (const id of runs.slice(1)) {
      if (stableKey(s.hosts[id].secrets ?? {}) !== stableKey(secrets)) {
        problems.push({
          path: ["hosts", id, "secrets"],
          message: `differs from host "${runs[0]}", which runs the same configuration "${name}"; make them equal or give the hosts their own configurations`,
        });
      }
    }
    facts[name] = { deployKeys, efi, nixGc, secrets };
  }
  for (const [id, h] of Object.entries(s.hosts)) {
    const image = s.images[h.image];
    if (image) problems.push(...machineTypeProblems(id, h.machineType, h.image, image.guestOsFeatures, s.system));
  }
  return { facts, problems };
}
