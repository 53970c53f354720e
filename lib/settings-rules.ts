/**
 * Settings rules that span keys: references between ids, names derived from
 * several ids, labels per resource, and what Google or the flake would
 * otherwise refuse only after `nix eval` or at apply. lib/settings.ts runs
 * them after each key's own rule.
 */
import { configurationProblems } from "./configurations.js";
import { REGION, ZONE } from "./gce.js";
import { diskTypeProblem, machineTypeProblems, unknownMachineType } from "./machine-types.js";
import { firewallName, hostOutputId, HOST_OUTPUT_KEYS, imageOutputId, MAX_RECREATE_HOST_ID, ociOutputIds, serviceAccountId } from "./names.js";
import type { SettingsShape } from "./settings.js";
import { hasControlChars, shown } from "./text.js";

/** Labels Google allows on one resource. */
const MAX_LABELS = 64;
/** Labels the provider gives every labelled resource (lib/stack-setup.ts); settings.labels may override them. */
export const DEFAULT_LABELS: Readonly<Record<string, string>> = { "managed-by": "cdktf" };
/** Google provider 6's add_terraform_attribution_label (default true) adds it to every labelled resource it creates. */
const ATTRIBUTION_LABEL = "goog-terraform-provisioned";
/** Labels the constructs set over the user's: on instances (constructs/host.ts), on images (constructs/gce-image.ts, infra-stack). */
const INSTANCE_LABELS = ["host"];
const IMAGE_LABELS = ["image-id", "nix-store-hash", "nixos-label"];

interface CrossProblem {
  readonly path: PropertyKey[];
  readonly message: string;
}

/**
 * Rules that span keys: references, names derived from several ids, and what
 * the constructs would otherwise refuse only after `nix eval`.
 */
export function crossChecks(s: SettingsShape): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const add = (path: PropertyKey[], message: string) => problems.push({ path, message });
  const imageIds = Object.keys(s.images);
  const ociIds = Object.keys(s.ociImages);
  const providerLabels = [...Object.keys(DEFAULT_LABELS), ATTRIBUTION_LABEL, ...Object.keys(s.labels)];
  const region = s.region;
  // zod runs these rules even when a key failed its own: each rule skips what another already refused.
  if (ZONE.test(s.zone) && REGION.test(region) && !s.zone.startsWith(`${region}-`)) add(["zone"], `is not in region ${region}; use a zone of ${region}, such as ${region}-b`);
  // Object.hasOwn, not `in`: "toString" or "__proto__" are not images.
  for (const [id, h] of Object.entries(s.hosts)) {
    if (!Object.hasOwn(s.images, h.image)) {
      add(["hosts", id, "image"], `no image ${shown(h.image)} (known: ${imageIds.join(", ") || "none"})`);
    }
    h.runsOciImages.forEach((o, i) => {
      if (!Object.hasOwn(s.ociImages, o)) add(["hosts", id, "runsOciImages", i], `no OCI image ${shown(o)} (known: ${ociIds.join(", ") || "none"})`);
    });
    if (h.sshSourceRanges !== undefined && h.sshSourceRanges.length === 0) {
      add(["hosts", id, "sshSourceRanges"], "is empty; list the ranges allowed to SSH, or remove the key to deploy through IAP");
    }
    if (h.sshSourceRanges !== undefined && h.externalIp === false) {
      add(["hosts", id, "externalIp"], "is false, but sshSourceRanges deploys over the external IP; remove sshSourceRanges to deploy through IAP");
    }
    if (h.recreateOnImageChange && h.deletionProtection) {
      add(["hosts", id, "deletionProtection"], "cannot be combined with recreateOnImageChange: Google refuses to delete the old VM, so every image change would fail at the end of the apply");
    }
    if (h.recreateOnImageChange && id.length > MAX_RECREATE_HOST_ID) {
      add(["hosts", id, "recreateOnImageChange"], `needs a host id of at most ${MAX_RECREATE_HOST_ID} characters (the instance name gets an image suffix); "${id}" has ${id.length}`);
    }
    const instanceLabels = new Set([...providerLabels, ...Object.keys(h.labels), ...INSTANCE_LABELS]);
    if (instanceLabels.size > MAX_LABELS) {
      add(
        ["hosts", id, "labels"],
        `the instance would carry ${instanceLabels.size} labels (labels, hosts.${id}.labels, ${Object.keys(DEFAULT_LABELS).length + INSTANCE_LABELS.length} of the stack's and the provider's ${ATTRIBUTION_LABEL}); Google allows ${MAX_LABELS}`,
      );
    }
    for (const key of Object.keys(h.labels).filter((k) => INSTANCE_LABELS.includes(k))) {
      add(["hosts", id, "labels", key], "is set by the stack (the host id); choose another key");
    }
    // A subnetwork path names its region; the VM's zone must be in it.
    const subnetRegion = /\/regions\/([^/]+)\/subnetworks\//.exec(h.subnetwork ?? "")?.[1];
    if (subnetRegion && subnetRegion !== region) {
      add(["hosts", id, "subnetwork"], `is in region ${subnetRegion}, but zone ${s.zone} is in ${region}; use a subnetwork of ${region}`);
    }
    const diskType = diskTypeProblem(h.machineType, h.diskType);
    if (diskType) add(["hosts", id, "diskType"], diskType);
    const image = s.images[h.image];
    if (image && !unknownMachineType(h.machineType)) for (const p of machineTypeProblems(id, h.machineType, h.image, image.guestOsFeatures, s.system)) add(p.path, p.message);
  }
  const imageLabels = new Set([...providerLabels, ...IMAGE_LABELS]);
  if (imageLabels.size > MAX_LABELS) {
    add(["labels"], `images would carry ${imageLabels.size} labels (these, ${Object.keys(DEFAULT_LABELS).length + IMAGE_LABELS.length} of the stack's and the provider's ${ATTRIBUTION_LABEL}); Google allows ${MAX_LABELS}`);
  }
  for (const key of Object.keys(s.labels).filter((k) => [...INSTANCE_LABELS, ...IMAGE_LABELS].includes(k))) {
    add(["labels", key], "is set by the stack on the resources it labels; choose another key");
  }
  // Two ids that give one Google name or one output id.
  const unique = (kind: string, entries: [name: string, path: PropertyKey[], id: string][]) => {
    const seen = new Map<string, string>();
    for (const [name, path, id] of entries) {
      const first = seen.get(name);
      if (first === undefined) seen.set(name, id);
      else add(path, `gives the ${kind} "${name}", as ${first} does; shorten or rename one of them`);
    }
  };
  const hostIds = Object.keys(s.hosts);
  unique("firewall name", hostIds.map((id) => [firewallName(id), ["hosts", id], `hosts.${id}`]));
  unique("service account id", hostIds.map((id) => [serviceAccountId(id), ["hosts", id], `hosts.${id}`]));
  unique("image family", Object.entries(s.images).map(([id, image]) => [image.family, ["images", id, "family"], `images.${id}.family`]));
  unique("Terraform output", [
    ...imageIds.map((id): [string, PropertyKey[], string] => [imageOutputId(id), ["images", id], `images.${id}`]),
    ...ociIds.flatMap((id) => Object.values(ociOutputIds(id)).map((name): [string, PropertyKey[], string] => [name, ["ociImages", id], `ociImages.${id}`])),
    ...hostIds.flatMap((id) => HOST_OUTPUT_KEYS.map((key): [string, PropertyKey[], string] => [hostOutputId(id, key), ["hosts", id], `hosts.${id}`])),
  ]);
  // packages.<system> is keyed by package name (flake.nix, oci/default.nix): a second image of one name,
  // or deploy-rs, would replace an image there, and synth and the push step would use the wrong archive.
  const ociPackages = new Map<string, string>();
  for (const [id, o] of Object.entries(s.ociImages)) {
    const first = ociPackages.get(o.package);
    if (first !== undefined) add(["ociImages", id, "package"], `${shown(o.package)} is also ociImages.${first}.package; give each OCI image a package of its own`);
    else ociPackages.set(o.package, id);
    if (o.package === s.deploy.package || o.package === "deploy-rs") {
      const where = o.package === s.deploy.package ? "deploy.package" : "flake.nix's packages.<system>.deploy-rs";
      add(["ociImages", id, "package"], `${shown(o.package)} is the flake's deploy-rs package (${where}); choose another name`);
    }
  }
  for (const p of configurationProblems(s)) add(p.path, p.message);
  if (s.backend.type === "gcs" && s.backend.bucket === s.imageBucket) {
    add(["backend", "bucket"], "is also imageBucket; keep state in a bucket of its own (its lifecycle rule deletes image objects, and images must not share state's access)");
  }
  return problems;
}

/** An IPv4 range: four octets of 0-255 and a prefix length of 0-32. */
export function isIpv4Cidr(text: string): boolean {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!match) return false;
  const octets = match.slice(1, 5).map(Number);
  return octets.every((o, i) => o <= 255 && String(o) === match[i + 1]) && Number(match[5]) <= 32;
}
/**
 * Users that NixOS, or the services in nixos/services, declare on every host
 * or on hosts that run postgres (root has a check of its own): nobody, sshd,
 * nscd, messagebus, the build users and systemd's own users.
 */
const SYSTEM_USERS = new Set(["nobody", "sshd", "nscd", "messagebus", "polkituser", "postgres"]);
export function isSystemUser(user: string): boolean {
  return SYSTEM_USERS.has(user) || /^nixbld\d*$/.test(user) || user.startsWith("systemd-");
}

/** `hosts.vm.sshKeys[0]`; odd keys are quoted and escaped. */
export function keyPath(path: readonly PropertyKey[]): string {
  const parts = path.map((p) => {
    if (typeof p === "number") return `[${p}]`;
    const key = String(p);
    return /^[A-Za-z0-9_$-]{1,64}$/.test(key) ? `.${key}` : `[${shown(key)}]`;
  });
  return parts.join("").replace(/^\./, "") || "(root)";
}

/** Longest string any setting may hold (a 16384-bit RSA key line is about 2,800 characters). */
const MAX_STRING = 8192;

/**
 * Checks every string and key of the raw JSON before the schema: no control
 * characters (a newline in an SSH key would add a key line; an escape code
 * would rewrite the terminal) and nothing longer than MAX_STRING.
 */
export function rawProblems(value: unknown, path: PropertyKey[] = [], out: string[] = []): string[] {
  if (out.length >= 20) return out;
  if (typeof value === "string") {
    if (hasControlChars(value)) out.push(`${keyPath(path)}: contains a control character such as a newline (got ${shown(value)}); remove it`);
    else if (value.length > MAX_STRING) out.push(`${keyPath(path)}: is ${value.length} characters; at most ${MAX_STRING}`);
    // cdktf replaces its token markers in any string at synth, escaping or not: "${TfToken[TOKEN.1]}" would become a Terraform reference.
    else if (value.includes("{TfToken[")) out.push(`${keyPath(path)}: contains "{TfToken[", which cdktf reads as a token of its own (got ${shown(value)}); remove it`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => rawProblems(v, [...path, i], out));
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (hasControlChars(k) || k.length > 256) out.push(`${keyPath([...path, k])}: key has a control character or is over 256 characters; rename it`);
      // The schema's records skip this key without a word: a host or label written so would vanish.
      else if (k === "__proto__") out.push(`${keyPath([...path, k])}: "__proto__" cannot be a key here; rename it`);
      else rawProblems(v, [...path, k], out);
    }
  }
  return out;
}
