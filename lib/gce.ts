/** Naming rules of Google Compute Engine and Cloud Storage, in one place. */
import { createHash } from "node:crypto";

/** Instance, image, image family and firewall names. */
export const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const GCE_NAME_RULE = "1-63 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-'";

/** Label keys: lowercase letter first, then lowercase letters, digits, '_' and '-'. */
export const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
/** Label values: may be empty. */
export const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/**
 * The boot disk's architecture for each Nix system. Google refuses an Arm
 * machine type with a disk it takes for x86 ("Requested boot disk
 * architecture ... is not compatible with machine type architecture"), and
 * google_compute_image (provider 6.50) has no architecture argument: the
 * instance's boot_disk.initialize_params.architecture carries it.
 */
export const DISK_ARCHITECTURE = { "x86_64-linux": "X86_64", "aarch64-linux": "ARM64" } as const;

/** Bucket names without dots (dotted names need domain verification). */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$/;
export const BUCKET_NAME_RULE = "3-63 characters: lowercase letters, digits, '-' and '_', starting and ending with a letter or digit";

export const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
export const REGION = /^[a-z]+-[a-z]+[0-9]+$/;
export const ZONE = /^[a-z]+-[a-z]+[0-9]+-[a-z]$/;

/** OCI image versions: the prefix of `<version>-<store hash>` tags. */
export const OCI_VERSION = /^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/;

/** A Nix store path: /nix/store/<32-char hash>-<name>, with the characters Nix allows in names. */
export const STORE_PATH = /^\/nix\/store\/([0-9a-df-np-sv-z]{32})-[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,210}$/;

/** Shortest hash kept in an image name when the family is long. */
export const MIN_IMAGE_HASH_CHARS = 20;
export const MAX_NAME = 63;
/** Longest family that leaves room for MIN_IMAGE_HASH_CHARS of digest in an image name. */
export const MAX_FAMILY = MAX_NAME - 1 - MIN_IMAGE_HASH_CHARS;

/** The 32-character hash of a store path. Throws if `storePath` is not one. */
export function storeHash(storePath: string): string {
  const match = STORE_PATH.exec(storePath);
  if (!match) throw new Error(`"${storePath}" is not a Nix store path (/nix/store/<hash>-<name>)`);
  return match[1];
}

/**
 * `<family>-<hash>`, keeping all 32 hash characters when the family leaves room
 * (families up to 30 characters), otherwise the first 63 - 1 - len(family)
 * characters: at least MIN_IMAGE_HASH_CHARS, as the settings allow families of
 * at most MAX_FAMILY characters. The hash alphabet is valid in GCE names.
 */
export function imageName(family: string, hash: string): string {
  return `${family}-${hash.slice(0, Math.min(hash.length, MAX_NAME - family.length - 1))}`;
}

/** Turns free text (a NixOS label such as "25.11.20260107.d351d06") into a valid label value. */
export function labelValue(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_-]/g, "-").slice(0, 63);
}

/** Nix's base-32 alphabet (no e, o, t, u): valid inside GCE names and labels. */
const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";

/**
 * A 32-character digest, in Nix's base-32 alphabet, of everything that makes
 * Google create a new image: the store path (which carries the system, so the
 * architecture too), the guest OS features, the source URL and the storage
 * location. Changing any of them gives a new name, so a replacement never
 * collides with the image it replaces.
 */
export function imageDigest(storePath: string, guestOsFeatures: readonly string[], sourceUrl: string, storageLocation: string): string {
  const bytes = createHash("sha256")
    .update(JSON.stringify([storePath, [...guestOsFeatures].sort(), sourceUrl, storageLocation]))
    .digest();
  let out = "";
  for (let i = 0; i < 32; i++) {
    const bit = i * 5;
    const pair = (bytes[bit >> 3] << 8) | (bytes[(bit >> 3) + 1] ?? 0);
    out += NIX_BASE32[(pair >> (11 - (bit & 7))) & 31];
  }
  return out;
}
