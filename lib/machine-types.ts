/**
 * GCE machine types: which exist, and what a machine type needs from the
 * image it boots. Machine series whose disks attach over NVMe also have gVNIC
 * as their only network interface: an image without the GVNIC guest OS
 * feature does not get a network there, and GRUB installed on /dev/sda
 * (nixpkgs' non-EFI GCE default) fails on the first activation, because the
 * boot disk is /dev/nvme0n1. Those hosts need an image with GVNIC and
 * UEFI_COMPATIBLE; the flake derives virtualisation.googleComputeImage.efi
 * from UEFI_COMPATIBLE, so the image then boots with GRUB on the EFI system
 * partition.
 *
 * Source: Google's Compute Engine documentation (the machine series pages,
 * "Machine families resource and comparison guide" and "Using Google Virtual
 * NIC"), as of 2025, taken as remembered: the code index held only the
 * general-purpose page. Recheck when Google adds a series or a shape; until
 * then a new type is refused at synth with the nearest one listed here.
 */

import { nearest } from "./text.js";

const ALL = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 128];
const upTo = (max: number, counts = ALL) => counts.filter((n) => n <= max);
const same = (counts: readonly (number | string)[], ...families: string[]) => Object.fromEntries(families.map((f) => [f, counts]));

/** Series → family → sizes: `<series>-<family>-<size>`, e.g. n2-standard-4 or a2-highgpu-1g. */
const SHAPES: Record<string, Record<string, readonly (number | string)[]>> = {
  e2: { ...same(upTo(32).slice(1), "standard", "highcpu"), highmem: upTo(16).slice(1) },
  n1: same([1, 2, 4, 8, 16, 32, 64, 96], "standard", "highmem", "highcpu"),
  n2: { ...same(upTo(128).slice(1), "standard", "highmem"), highcpu: upTo(96).slice(1) },
  n2d: { ...same([...upTo(128).slice(1), 224], "standard", "highcpu"), highmem: upTo(96).slice(1) },
  n4: same(upTo(80).slice(1), "standard", "highmem", "highcpu"),
  c2: { standard: [4, 8, 16, 30, 60] },
  c2d: same([2, 4, 8, 16, 32, 56, 112], "standard", "highmem", "highcpu"),
  c3: same([4, 8, 22, 44, 88, 176], "standard", "highmem", "highcpu"),
  c3d: same([4, 8, 16, 30, 60, 90, 180, 360], "standard", "highmem", "highcpu"),
  c4: same([2, 4, 8, 16, 24, 32, 48, 96, 144, 192, 288], "standard", "highmem", "highcpu"),
  c4a: same([1, 2, 4, 8, 16, 32, 48, 64, 72], "standard", "highmem", "highcpu"),
  c4d: same([2, 4, 8, 16, 32, 48, 64, 96, 192, 384], "standard", "highmem", "highcpu"),
  t2d: { standard: [1, 2, 4, 8, 16, 32, 48, 60] },
  t2a: { standard: [1, 2, 4, 8, 16, 32, 48] },
  m1: { megamem: [96], ultramem: [40, 80, 160] },
  m2: { megamem: [416], ultramem: [208, 416], hypermem: [416] },
  m3: { megamem: [64, 128], ultramem: [32, 64, 128] },
  m4: { megamem: [28, 56, 112, 224], ultramem: [56, 112, 224] },
  x4: { megamem: ["960-metal", "1440-metal", "1920-metal"] },
  h3: { standard: [88] },
  z3: { highmem: [88, 176] },
  g2: { standard: [4, 8, 12, 16, 24, 32, 48, 96] },
  a2: { highgpu: ["1g", "2g", "4g", "8g"], megagpu: ["16g"], ultragpu: ["1g", "2g", "4g", "8g"] },
  a3: { highgpu: ["1g", "2g", "4g", "8g"], megagpu: ["8g"], edgegpu: ["8g"], ultragpu: ["8g"] },
  a4: { highgpu: ["8g"] },
};
/** Shared-core types, named by size alone. */
const SHARED_CORE = ["e2-micro", "e2-small", "e2-medium", "f1-micro", "g1-small"];
/**
 * Custom shapes, `<series>-custom-<vCPUs>-<MiB>[-ext]` (N1's without the
 * series), and E2's shared-core `e2-custom-<micro|small|medium>-<MiB>`; sizes
 * are Google's to judge.
 */
const CUSTOM = /^(((e2|n2|n2d|n4|c4|c4d)-)?custom-\d{1,3}-\d{3,7}(-ext)?|e2-custom-(micro|small|medium)-\d{3,5})$/;
/** Series whose shapes may carry local SSDs (`-lssd`). */
const LOCAL_SSD = ["c3", "c3d", "c4", "c4a", "c4d"];

/** Every predefined machine type (custom shapes aside). */
const KNOWN: ReadonlySet<string> = new Set([
  ...SHARED_CORE,
  ...Object.entries(SHAPES).flatMap(([series, families]) =>
    Object.entries(families).flatMap(([family, sizes]) =>
      sizes.flatMap((size) => [`${series}-${family}-${size}`, ...(LOCAL_SSD.includes(series) ? [`${series}-${family}-${size}-lssd`] : [])]),
    ),
  ),
]);

/** Why `machineType` is not a GCE machine type, with the nearest one; undefined when it is one. */
export function unknownMachineType(machineType: string): string | undefined {
  if (KNOWN.has(machineType) || CUSTOM.test(machineType)) return undefined;
  const [series, family, size] = machineType.split("-");
  const sizes = SHAPES[series]?.[family];
  // A known series and family: the next size up, else the largest.
  const numeric = sizes?.filter((n): n is number => typeof n === "number");
  const bigger = numeric?.find((n) => n >= Number(size)) ?? numeric?.[numeric.length - 1];
  const suggestion = bigger !== undefined && /^\d+$/.test(size ?? "") ? `${series}-${family}-${bigger}` : nearest(machineType, KNOWN);
  return `is not a GCE machine type (<series>-<family>-<vCPUs> such as e2-standard-2, or <series>-custom-<vCPUs>-<MiB>); did you mean "${suggestion}"?`;
}

/** Series (the machine type's prefix) that attach disks over NVMe and require gVNIC. */
const NVME_GVNIC_SERIES: readonly string[] = ["c3", "c3d", "c4", "c4a", "c4d", "n4", "t2a", "h3", "z3", "m3", "m4", "x4", "a3", "a4"];

/** Series whose CPUs are Arm (Ampere Altra in T2A, Google Axion in C4A): an x86_64-linux image does not boot there. */
const ARM_SERIES: readonly string[] = ["t2a", "c4a"];

/** The series of a machine type: "c3" for "c3-standard-4", "e2" for "e2-small". */
export function machineSeries(machineType: string): string {
  return machineType.split("-")[0];
}

/** True when the machine type boots from NVMe and needs gVNIC (see NVME_GVNIC_SERIES). */
export function bootsFromNvme(machineType: string): boolean {
  return NVME_GVNIC_SERIES.includes(machineSeries(machineType));
}

/** The guest OS features such a machine type needs from its image, with the reason for each. */
const NVME_IMAGE_FEATURES: ReadonlyArray<{ feature: string; why: string }> = [
  { feature: "GVNIC", why: "gVNIC is its only network interface" },
  { feature: "UEFI_COMPATIBLE", why: "GRUB cannot be installed on /dev/sda there; the image must boot with EFI" },
];

/** One problem per missing feature: what the host's machine type needs from its image. */
export function machineTypeProblems(
  hostId: string,
  machineType: string,
  imageId: string,
  guestOsFeatures: readonly string[],
  system: string,
): Array<{ path: string[]; message: string }> {
  const path = ["hosts", hostId, "machineType"];
  const problems: Array<{ path: string[]; message: string }> = [];
  const arm = ARM_SERIES.includes(machineSeries(machineType));
  if (arm !== (system === "aarch64-linux")) {
    problems.push({
      path,
      message: arm
        ? `${machineType} has Arm CPUs, but system is "${system}"; set system to "aarch64-linux" or pick an x86 machine type`
        : `${machineType} has x86 CPUs, but system is "${system}"; pick an Arm machine type (${ARM_SERIES.join(", ")}) or set system to "x86_64-linux"`,
    });
  }
  if (!bootsFromNvme(machineType)) return problems;
  for (const { feature, why } of NVME_IMAGE_FEATURES) {
    if (guestOsFeatures.includes(feature)) continue;
    problems.push({ path, message: `${machineType} boots from NVMe and needs images.${imageId}.guestOsFeatures to include "${feature}" (${why})` });
  }
  return problems;
}

/**
 * Boot disk types (hosts.*.diskType) each machine series accepts; a series
 * not listed is not checked. Fourth-generation series attach Hyperdisk only;
 * E2, N1, T2A, C2 and C2D have no Hyperdisk at all (Google refuses either
 * mismatch with a 400 when it creates the VM). Source: Google's Compute
 * Engine documentation, "About Hyperdisk" (its machine series support table,
 * https://cloud.google.com/compute/docs/disks/hyperdisks) and the machine
 * series pages, as read in 2025: recheck when Google adds a series.
 */
export const BOOT_DISK_TYPES: Readonly<Record<string, readonly string[]>> = {
  c4: ["hyperdisk-balanced"],
  c4a: ["hyperdisk-balanced"],
  c4d: ["hyperdisk-balanced"],
  n4: ["hyperdisk-balanced"],
  e2: ["pd-standard", "pd-balanced", "pd-ssd"],
  n1: ["pd-standard", "pd-balanced", "pd-ssd"],
  t2a: ["pd-standard", "pd-balanced", "pd-ssd"],
  c2: ["pd-standard", "pd-balanced", "pd-ssd"],
  c2d: ["pd-standard", "pd-balanced", "pd-ssd"],
};

/** Why the machine type cannot boot from that disk type, or undefined. */
export function diskTypeProblem(machineType: string, diskType: string): string | undefined {
  const series = machineSeries(machineType);
  const allowed = BOOT_DISK_TYPES[series];
  if (!allowed || allowed.includes(diskType)) return undefined;
  return `"${diskType}" is not a disk type of the ${series.toUpperCase()} series (${machineType}); it takes ${allowed.map((t) => `"${t}"`).join(", ")}`;
}
