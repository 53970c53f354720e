/**
 * The settings file (infra.json by default, or the file named by INFRA_CONFIG).
 * The keys are a user-facing contract: scripts and docs depend on them.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import {
  BUCKET_NAME,
  BUCKET_NAME_RULE,
  GCE_NAME,
  GCE_NAME_RULE,
  LABEL_KEY,
  LABEL_VALUE,
  MAX_FAMILY,
  MIN_IMAGE_HASH_CHARS,
  OCI_VERSION,
  PROJECT_ID,
  REGION,
  ZONE,
} from "./gce.js";
import { configurationFacts, hostNixGcSchema, nixGcSchema } from "./configurations.js";
import { firewallName, hostOutputId, HOST_OUTPUT_KEYS, imageOutputId, MAX_RECREATE_HOST_ID, ociOutputIds, serviceAccountId } from "./names.js";
import { diskTypeProblem } from "./machine-types.js";
import { FLAKE_ATTR } from "./resolved.js";
import { sshPublicKeyProblem } from "./ssh-public-key.js";
import { hasControlChars, oneLine, shown } from "./text.js";

const gceName = z.string().regex(GCE_NAME, { message: `must be ${GCE_NAME_RULE}` });
const labels = z
  .record(
    z.string().regex(LABEL_KEY, { message: "label keys are lowercase letters, digits, '_' and '-', starting with a letter" }),
    z.string().regex(LABEL_VALUE, { message: "label values are at most 63 lowercase letters, digits, '_' and '-'" }),
  )
  // Google reserves label keys starting with "goog" (its own goog-terraform-provisioned, goog-dm, ...) and refuses them.
  .superRefine((map, ctx) => {
    for (const key of Object.keys(map).filter((k) => k.startsWith("goog"))) {
      ctx.addIssue({ code: "custom", path: [key], message: 'Google reserves label keys starting with "goog"; choose another key' });
    }
  })
  .describe("Labels added to every labelled resource.");
/** An IPv4 range: four octets of 0-255 and a prefix length of 0-32. */
function isIpv4Cidr(text: string): boolean {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!match) return false;
  const octets = match.slice(1, 5).map(Number);
  return octets.every((o, i) => o <= 255 && String(o) === match[i + 1]) && Number(match[5]) <= 32;
}
const cidr = z.string().refine(isIpv4Cidr, { message: "must be an IPv4 CIDR range such as 203.0.113.0/24 (octets 0-255, prefix 0-32)" });
/** Google refuses bucket names that start with "goog" or contain "google" or a close misspelling. */
const bucketName = z
  .string()
  .regex(BUCKET_NAME, { message: `must be ${BUCKET_NAME_RULE}` })
  .refine((name) => !name.startsWith("goog") && !/g[o0]{2}gle/.test(name), {
    message: "Cloud Storage refuses bucket names that start with \"goog\" or contain \"google\"; choose another name",
  });
const GCE_NAME_PART = GCE_NAME.source.slice(1, -1);
const network = z.string().regex(new RegExp(`^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/)?${GCE_NAME_PART}$`), {
  message: "must be a VPC network name such as default, or projects/<project>/global/networks/<name>",
});
const subnetwork = z
  .string()
  .regex(new RegExp(`^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/regions/[a-z]+-[a-z]+[0-9]+/subnetworks/)?${GCE_NAME_PART}$`), {
    message: "must be a subnetwork name, or projects/<project>/regions/<region>/subnetworks/<name>",
  });

/**
 * Users that NixOS, or the services in nixos/services, declare on every host
 * or on hosts that run postgres (root has a check of its own): nobody, sshd,
 * nscd, messagebus, the build users and systemd's own users.
 */
const SYSTEM_USERS = new Set(["nobody", "sshd", "nscd", "messagebus", "polkituser", "postgres"]);
function isSystemUser(user: string): boolean {
  return SYSTEM_USERS.has(user) || /^nixbld\d*$/.test(user) || user.startsWith("systemd-");
}

/** A directory the scripts write to: not empty, not "/", no "..", nothing a shell or Terraform would read. */
const stateDirectory = z
  .string()
  .regex(/^\/?[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/?$/, {
    message: "must be a directory path of letters, digits, '.', '_', '-' and '/' (not empty, no spaces or quotes), such as .infra",
  })
  .refine((path) => !path.split("/").includes(".."), { message: "must not contain '..'" });
/** Attribute names inside a flake; kept to what needs no quoting anywhere. */
const flakeAttr = z
  .string()
  .regex(FLAKE_ATTR, { message: "must be a Nix attribute name (letters, digits, '_', '-', '\\'')" });
/** Parsed for real (lib/ssh-public-key.ts): sshd silently ignores a damaged key line. */
const sshPublicKey = z.string().superRefine((line, ctx) => {
  const problem = sshPublicKeyProblem(line);
  // input: undefined keeps the value out of the message: it may be a private key.
  if (problem) ctx.addIssue({ code: "custom", message: `${problem} (paste the whole line of a .pub file)`, input: undefined });
});

const image = z.strictObject({
  nixosConfiguration: flakeAttr.describe("nixosConfigurations attribute that defines the image."),
  family: gceName
    .refine((family) => family.length <= MAX_FAMILY, {
      message: `must be at most ${MAX_FAMILY} characters (image names are <family>-<digest> and keep ${MIN_IMAGE_HASH_CHARS} digest characters)`,
    })
    .describe("GCE image family. Image names are <family>-<digest of the store path, guest OS features and source>."),
  public: z
    .boolean()
    .default(false)
    .describe("Let every authenticated Google user use the image (roles/compute.imageUser). Default false."),
  guestOsFeatures: z
    .array(z.enum(["VIRTIO_SCSI_MULTIQUEUE", "UEFI_COMPATIBLE", "GVNIC", "SEV_CAPABLE", "MULTI_IP_SUBNET"]))
    .default(["VIRTIO_SCSI_MULTIQUEUE"])
    .describe("GCE guest OS features. UEFI_COMPATIBLE makes the flake build the image (and the systems of its hosts) with EFI boot."),
});

const host = z.strictObject({
  nixosConfiguration: flakeAttr.describe("nixosConfigurations attribute deployed to the host. The flake's deploy.nodes are named by host id."),
  image: z.string().describe("Id of the image (a key of images) the host boots first."),
  machineType: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, { message: "must be a GCE machine type such as e2-standard-2" }),
  diskSizeGb: z.number().int().min(10).max(65536).default(20).describe("Boot disk size in GB. Default 20."),
  diskType: z.enum(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"]).default("pd-balanced"),
  network: network.default("default").describe("VPC network name (or projects/<p>/global/networks/<name>). Default \"default\"."),
  subnetwork: subnetwork.optional().describe("Subnetwork name; default: the network's automatic subnetwork."),
  tags: z
    .array(gceName)
    .max(64)
    // Google refuses an instance whose tags repeat one.
    .superRefine((tags, ctx) => {
      tags.forEach((tag, i) => {
        if (tags.indexOf(tag) < i) ctx.addIssue({ code: "custom", path: [i], message: `repeats the tag ${shown(tag)}; list each tag once` });
      });
    })
    .default([])
    .describe("Extra network tags (at most 64)."),
  labels: labels.default({}),
  externalIp: z
    .boolean()
    .optional()
    .describe("Give the VM an ephemeral external IP. Default: only when sshSourceRanges is set. Deploys through IAP and pushes from the deployer need none."),
  sshSourceRanges: z
    .array(cidr)
    .optional()
    .describe("Open direct SSH from these ranges and deploy over the external IP. Default: none; deploys go through IAP."),
  sshKeys: z
    .array(sshPublicKey)
    .default([])
    .describe("Public keys of the deploy user: declared in the host's NixOS configuration (and its image) and in the instance metadata."),
  nixGc: hostNixGcSchema,
  deletionProtection: z.boolean().default(false),
  recreateOnImageChange: z
    .boolean()
    .default(false)
    .describe("Replace the VM when its image changes. Default false: the image is only the first boot; deploy-rs converges."),
  runsOciImages: z.array(z.string()).default([]).describe("Ids of ociImages the host pulls; grants it read access to the repository."),
});

const ociImage = z.strictObject({
  package: flakeAttr.describe("packages.<system> attribute that builds the image (a dockerTools image archive)."),
  version: z
    .string()
    .regex(OCI_VERSION, { message: "must be a version such as 1.2.0 (letters, digits, '.', '_', '-')" }),
  user: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/, { message: "must be a user[:group], by name or number, such as 65534:65534 or 0" })
    .optional()
    .describe("User the container runs as (the image config's User). Default 65534:65534 (nobody); \"0\" runs it as root."),
});

const backend = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("local") }),
  z.strictObject({
    type: z.literal("gcs"),
    bucket: bucketName,
    prefix: z.string().regex(/^[A-Za-z0-9._/-]+$/).default("nixos-gce").describe("Each stack stores its state under <prefix>/<stack>."),
  }),
]);

/**
 * Defaults of the deploy and registry objects. Zod returns an object's own
 * default as it is, without its keys' defaults, so each key and the whole
 * object take their values from here.
 */
const DEPLOY_DEFAULT = { user: "deploy", package: "deploy-rs", sshWaitSeconds: 300, confirmTimeoutSeconds: 30, activationTimeoutSeconds: 240 };
const REGISTRY_DEFAULT = { repository: "pipeline", keepVersions: 10 };

const settingsBase = z.strictObject({
  $schema: z.string().optional(),
  project: z.string().regex(PROJECT_ID, { message: "must be a Google Cloud project id (6-30 lowercase letters, digits, '-')" }),
  region: z.string().regex(REGION, { message: "must be a region such as europe-west1" }),
  zone: z.string().regex(ZONE, { message: "must be a zone such as europe-west1-b" }),
  flake: z
    .string()
    .min(1)
    // Steps append "#<attribute>" and pass the reference as one argument: a "#" or a leading "-" would change what Nix reads.
    .regex(/^[^#-][^#]*$/, { message: "must be a flake reference without '#' (the attributes come from the settings) and not starting with '-', such as . or github:org/repo" })
    // The reference is written to cdk.tf.json, saved plans and every step's log;
    // input: undefined keeps the password out of the message too.
    .superRefine((flake, ctx) => {
      if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#@]*:[^/?#@]*@/i.test(flake)) {
        ctx.addIssue({
          code: "custom",
          message:
            "must not carry a password in its URL (user:password@): the reference is written to cdk.tf.json, saved plans and step logs; give Nix the token through nix.conf access-tokens or a git credential helper",
          input: undefined,
        });
      }
    })
    .default(".")
    .describe("Flake reference. Relative paths are relative to the project root. Default \".\"."),
  system: z.enum(["x86_64-linux", "aarch64-linux"]).default("x86_64-linux").describe("Nix system of the hosts and OCI images."),
  imageBucket: bucketName,
  createImageBucket: z.boolean().default(true).describe("Create imageBucket in this stack; false uses an existing bucket."),
  imageBucketLocation: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{1,29}$/, { message: "must be a Cloud Storage location such as EU, US, eur4 or europe-west1" })
    .optional()
    .describe("Bucket location; default: the region."),
  imageStorageLocation: z
    .string()
    .regex(/^[a-z]+(-[a-z]+[0-9]+)?$/, { message: "must be a region such as europe-west1 or a multi-region such as eu" })
    .optional()
    .describe("Where Google stores the images (storage_locations): a region or a multi-region such as eu. Default: the region, which an organisation's gcp.resourceLocations policy allows when it allows the region."),
  labels: labels.default({}),
  ociSource: z
    .string()
    .regex(/^https?:\/\/[^\s"'\\]+$/, { message: "must be an http(s) URL such as https://github.com/org/repo" })
    .optional()
    .describe("org.opencontainers.image.source of the OCI images (read by the flake)."),
  lockFile: z.string().min(1).default("infra.lock.json").describe("Where npm run pin writes resolved store paths, relative to the project root."),
  stateDir: stateDirectory
    .default(".infra")
    .describe("Local directory for GC roots, known_hosts files and upload locks, relative to the project root (or absolute)."),
  backend: backend.default({ type: "local" }),
  deploy: z
    .strictObject({
      user: z
        .string()
        .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
        // The modules make it a normal user with a home and refuse root logins over SSH (PermitRootLogin no).
        .refine((user) => user !== "root", { message: 'must not be "root": hosts refuse root logins over SSH; keep the default "deploy"' })
        // A name NixOS already gives a system user would make the flake's evaluation fail, after synth's checks.
        .refine((user) => !isSystemUser(user), {
          message: 'is a system user on NixOS hosts (the modules would declare it twice); keep the default "deploy"',
        })
        .default(DEPLOY_DEFAULT.user)
        .describe("SSH user deploy-rs connects as."),
      package: flakeAttr.default(DEPLOY_DEFAULT.package).describe("packages.<system> attribute of the flake that provides deploy-rs."),
      sshWaitSeconds: z.number().int().min(1).max(3600).default(DEPLOY_DEFAULT.sshWaitSeconds).describe("How long to wait for SSH on a new VM."),
      confirmTimeoutSeconds: z.number().int().min(1).max(3600).default(DEPLOY_DEFAULT.confirmTimeoutSeconds),
      activationTimeoutSeconds: z.number().int().min(1).max(7200).default(DEPLOY_DEFAULT.activationTimeoutSeconds),
    })
    .default(DEPLOY_DEFAULT),
  registry: z
    .strictObject({
      repository: gceName.default(REGISTRY_DEFAULT.repository).describe("Artifact Registry repository id."),
      keepVersions: z.number().int().min(1).max(1000).default(REGISTRY_DEFAULT.keepVersions).describe("Cleanup policy: keep the newest N versions."),
    })
    .default(REGISTRY_DEFAULT),
  nixGc: nixGcSchema,
  images: z.record(gceName, image).describe("Base images, by id."),
  hosts: z.record(gceName, host).default({}).describe("VMs, by id. The id is the instance name."),
  ociImages: z.record(gceName, ociImage).default({}).describe("OCI images pushed to Artifact Registry, by id."),
});

const settingsSchema = settingsBase.superRefine((s, ctx) => {
  for (const problem of crossChecks(s)) ctx.addIssue({ code: "custom", ...problem });
});

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
function crossChecks(s: z.output<typeof settingsBase>): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const add = (path: PropertyKey[], message: string) => problems.push({ path, message });
  const imageIds = Object.keys(s.images);
  const ociIds = Object.keys(s.ociImages);
  const providerLabels = [...Object.keys(DEFAULT_LABELS), ATTRIBUTION_LABEL, ...Object.keys(s.labels)];
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
    const diskType = diskTypeProblem(h.machineType, h.diskType);
    if (diskType) add(["hosts", id, "diskType"], diskType);
    // A subnetwork path names its region; the VM's zone must be in it.
    const subnetRegion = /\/regions\/([^/]+)\/subnetworks\//.exec(h.subnetwork ?? "")?.[1];
    const region = s.zone.replace(/-[a-z]$/, "");
    if (subnetRegion && subnetRegion !== region) {
      add(["hosts", id, "subnetwork"], `is in region ${subnetRegion}, but zone ${s.zone} is in ${region}; use a subnetwork of ${region}`);
    }
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
  // Machine types against their images, and one answer per NixOS configuration (needs resolvable references).
  const dangling = problems.some((p) => p.path[0] === "hosts" && (p.path[2] === "image" || p.path[2] === "runsOciImages"));
  if (!dangling) for (const p of configurationFacts(s).problems) add(p.path, p.message);
  if (s.backend.type === "gcs" && s.backend.bucket === s.imageBucket) {
    add(["backend", "bucket"], "is also imageBucket; keep state in a bucket of its own (its lifecycle rule deletes image objects, and images must not share state's access)");
  }
  return problems;
}

export type Settings = z.output<typeof settingsSchema>;
export type SettingsInput = z.input<typeof settingsSchema>;
export type HostSettings = Settings["hosts"][string];

/** Thrown for bad settings; `problems` holds one line per problem. */
export class SettingsError extends Error {
  readonly problems: string[];
  constructor(
    readonly file: string,
    problems: string[],
  ) {
    const lines = problems.map(oneLine);
    super(`${oneLine(file)}: ${lines.length} problem(s)\n${lines.map((p) => `  ${p}`).join("\n")}`);
    this.problems = lines;
  }
}

/** `hosts.vm.sshKeys[0]`; odd keys are quoted and escaped. */
function keyPath(path: readonly PropertyKey[]): string {
  const parts = path.map((p) => {
    if (typeof p === "number") return `[${p}]`;
    const key = String(p);
    return /^[A-Za-z0-9_$-]{1,64}$/.test(key) ? `.${key}` : `[${shown(key)}]`;
  });
  return parts.join("").replace(/^\./, "") || "(root)";
}

/** One line per zod issue: the key path, what is wrong, and the fix. */
function describeIssue(issue: z.core.$ZodIssue): string[] {
  const at = keyPath(issue.path);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => `${keyPath([...issue.path, k])}: unknown key (remove it or check its spelling)`);
    case "invalid_type":
      return [`${at}: expected ${issue.expected}${issue.input === undefined ? " (missing)" : `, got ${shown(issue.input)}`}`];
    case "invalid_value":
      return [`${at}: must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`];
    case "invalid_key":
      return [`${at}: ${shown(String(issue.path[issue.path.length - 1]))} is not a valid id: ${issue.issues[0]?.message ?? issue.message}`];
    default:
      return [`${at}: ${issue.message}${"input" in issue && typeof issue.input === "string" ? ` (got ${shown(issue.input)})` : ""}`];
  }
}

/** Longest string any setting may hold (a 16384-bit RSA key line is about 2,800 characters). */
const MAX_STRING = 8192;

/**
 * Checks every string and key of the raw JSON before the schema: no control
 * characters (a newline in an SSH key would add a key line; an escape code
 * would rewrite the terminal) and nothing longer than MAX_STRING.
 */
function rawProblems(value: unknown, path: PropertyKey[] = [], out: string[] = []): string[] {
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

/** Validates parsed JSON. Throws SettingsError naming every problem. */
export function parseSettings(raw: unknown, file = "settings"): Settings {
  const early = rawProblems(raw);
  if (early.length) throw new SettingsError(file, early);
  const result = settingsSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new SettingsError(file, result.error.issues.flatMap(describeIssue));
  return result.data;
}

/** Why the settings file cannot be read, and what to do: INFRA_CONFIG is the usual culprit. */
function unreadable(code: string): string {
  if (code === "ENOENT") return "does not exist; set INFRA_CONFIG to your settings file, or unset it to read infra.json at the project root";
  if (code === "EISDIR") return "is a directory; INFRA_CONFIG names a JSON file, such as examples/offline.json";
  if (code === "EACCES") return "cannot be read (permission denied); make it readable, or set INFRA_CONFIG to another file";
  return `cannot read the settings file: ${code}`;
}

/** Reads and validates a settings file. */
export function loadSettings(file: string): Settings {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new SettingsError(file, [unreadable((e as NodeJS.ErrnoException).code ?? String(e))]);
  }
  let raw: unknown;
  try {
    // Some Windows editors start UTF-8 files with a byte order mark, which JSON.parse refuses.
    raw = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (e) {
    throw new SettingsError(file, [`not valid JSON: ${oneLine((e as Error).message).slice(0, 200)}`]);
  }
  return parseSettings(raw, file);
}

/** The JSON Schema published for editors (infra.schema.json). */
export function settingsJsonSchema(): unknown {
  return z.toJSONSchema(settingsSchema, { io: "input", unrepresentable: "any" });
}
