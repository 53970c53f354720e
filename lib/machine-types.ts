/**
 * What a machine type needs from the image it boots. Machine series whose
 * disks attach over NVMe also have gVNIC as their only network interface:
 * an image without the GVNIC guest OS feature does not get a network there,
 * and GRUB installed on /dev/sda (nixpkgs' non-EFI GCE default) fails on the
 * first activation, because the boot disk is /dev/nvme0n1. Those hosts need an
 * image with GVNIC and UEFI_COMPATIBLE; the flake derives
 * virtualisation.googleComputeImage.efi from UEFI_COMPATIBLE, so the image
 * then boots with GRUB on the EFI system partition.
 *
 * Source: Google's Compute Engine documentation, the machine series
 * comparison ("Machine families resource and comparison guide") and "Using
 * Google Virtual NIC", as of 2025. The code index available while writing
 * this held only the general-purpose machine page (C3, C3D and N4 as third
 * and fourth generation), not those tables, so the list was taken from the
 * documentation as remembered: recheck it when Google adds a series. A
 * series not listed here is not checked.
 */

/** Series (the machine type's prefix) that attach disks over NVMe and require gVNIC. */
const NVME_GVNIC_SERIES: readonly string[] = [
  // general purpose
  "c3",
  "c3d",
  "c4",
  "c4a",
  "c4d",
  "n4",
  "t2a",
  // compute, storage, memory optimized
  "h3",
  "z3",
  "m3",
  "m4",
  "x4",
  // accelerator optimized
  "a3",
  "a4",
];

/**
 * Series whose CPUs are Arm (Ampere Altra in T2A, Google Axion in C4A). An
 * x86_64-linux image does not boot there, and an aarch64-linux image boots
 * nowhere else. Same source, and same caveat, as NVME_GVNIC_SERIES.
 */
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
