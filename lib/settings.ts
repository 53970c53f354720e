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
  OCI_VERSION,
  PROJECT_ID,
  REGION,
  ZONE,
} from "./gce.js";
import { configurationFacts, hostNixGcSchema, nixGcSchema } from "./configurations.js";
import { sshPublicKeyProblem } from "./ssh-public-key.js";

const gceName = z.string().regex(GCE_NAME, { message: `must be ${GCE_NAME_RULE}` });
const labels = z
  .record(
    z.string().regex(LABEL_KEY, { message: "label keys are lowercase letters, digits, '_' and '-', starting with a letter" }),
    z.string().regex(LABEL_VALUE, { message: "label values are at most 63 lowercase letters, digits, '_' and '-'" }),
  )
  .describe("Labels added to every labelled resource.");
const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, { message: "must be an IPv4 CIDR range such as 203.0.113.0/24" });
/** Attribute names inside a flake; kept to what needs no quoting anywhere. */
const flakeAttr = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_'-]*$/, { message: "must be a Nix attribute name (letters, digits, '_', '-', '\\'')" });
/** Parsed for real (lib/ssh-public-key.ts): sshd silently ignores a damaged key line. */
const sshPublicKey = z.string().superRefine((line, ctx) => {
  const problem = sshPublicKeyProblem(line);
  // input: undefined keeps the value out of the message: it may be a private key.
  if (problem) ctx.addIssue({ code: "custom", message: `${problem} (paste the whole line of a .pub file)`, input: undefined });
});

const image = z.strictObject({
  nixosConfiguration: flakeAttr.describe("nixosConfigurations attribute that defines the image."),
  family: gceName.describe("GCE image family. Image names are <family>-<store hash>."),
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
  network: z.string().default("default").describe("VPC network name. Default \"default\"."),
  subnetwork: z.string().optional().describe("Subnetwork name; default: the network's automatic subnetwork."),
  tags: z.array(gceName).default([]).describe("Extra network tags."),
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
});

const backend = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("local") }),
  z.strictObject({
    type: z.literal("gcs"),
    bucket: z.string().regex(BUCKET_NAME, { message: `must be ${BUCKET_NAME_RULE}` }),
    prefix: z.string().regex(/^[A-Za-z0-9._/-]+$/).default("nixos-gce").describe("Each stack stores its state under <prefix>/<stack>."),
  }),
]);

export const settingsSchema = z
  .strictObject({
    $schema: z.string().optional(),
    project: z.string().regex(PROJECT_ID, { message: "must be a Google Cloud project id (6-30 lowercase letters, digits, '-')" }),
    region: z.string().regex(REGION, { message: "must be a region such as europe-west1" }),
    zone: z.string().regex(ZONE, { message: "must be a zone such as europe-west1-b" }),
    flake: z.string().min(1).default(".").describe("Flake reference. Relative paths are relative to the project root. Default \".\"."),
    system: z.enum(["x86_64-linux", "aarch64-linux"]).default("x86_64-linux").describe("Nix system of the hosts and OCI images."),
    imageBucket: z.string().regex(BUCKET_NAME, { message: `must be ${BUCKET_NAME_RULE}` }),
    createImageBucket: z.boolean().default(true).describe("Create imageBucket in this stack; false uses an existing bucket."),
    imageBucketLocation: z.string().optional().describe("Bucket location; default: the region."),
    labels: labels.default({}),
    ociSource: z
      .string()
      .url({ message: "must be a URL such as https://github.com/org/repo" })
      .optional()
      .describe("org.opencontainers.image.source of the OCI images (read by the flake)."),
    lockFile: z.string().default("infra.lock.json").describe("Where npm run pin writes resolved store paths."),
    stateDir: z.string().default(".infra").describe("Local directory for GC roots and known_hosts files, relative to the project root."),
    backend: backend.default({ type: "local" }),
    deploy: z
      .strictObject({
        user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/).default("deploy").describe("SSH user deploy-rs connects as."),
        package: flakeAttr.default("deploy-rs").describe("packages.<system> attribute of the flake that provides deploy-rs."),
        sshWaitSeconds: z.number().int().min(1).max(3600).default(300).describe("How long to wait for SSH on a new VM."),
        confirmTimeoutSeconds: z.number().int().min(1).max(3600).default(30),
        activationTimeoutSeconds: z.number().int().min(1).max(7200).default(240),
      })
      .default({ user: "deploy", package: "deploy-rs", sshWaitSeconds: 300, confirmTimeoutSeconds: 30, activationTimeoutSeconds: 240 }),
    registry: z
      .strictObject({
        repository: gceName.default("pipeline").describe("Artifact Registry repository id."),
        keepVersions: z.number().int().min(1).max(1000).default(10).describe("Cleanup policy: keep the newest N versions."),
      })
      .default({ repository: "pipeline", keepVersions: 10 }),
    nixGc: nixGcSchema,
    images: z.record(gceName, image).describe("Base images, by id."),
    hosts: z.record(gceName, host).default({}).describe("VMs, by id. The id is the instance name."),
    ociImages: z.record(gceName, ociImage).default({}).describe("OCI images pushed to Artifact Registry, by id."),
  })
  .superRefine((s, ctx) => {
    const imageIds = Object.keys(s.images);
    const ociIds = Object.keys(s.ociImages);
    for (const [id, h] of Object.entries(s.hosts)) {
      if (!(h.image in s.images)) {
        ctx.addIssue({
          code: "custom",
          path: ["hosts", id, "image"],
          message: `no image "${h.image}" (known: ${imageIds.join(", ") || "none"})`,
        });
      }
      h.runsOciImages.forEach((o, i) => {
        if (!(o in s.ociImages)) {
          ctx.addIssue({
            code: "custom",
            path: ["hosts", id, "runsOciImages", i],
            message: `no OCI image "${o}" (known: ${ociIds.join(", ") || "none"})`,
          });
        }
      });
    }
    // Machine types against their images, and one answer per NixOS configuration.
    for (const p of configurationFacts(s).problems) ctx.addIssue({ code: "custom", path: p.path, message: p.message });
  });

export type Settings = z.output<typeof settingsSchema>;
export type SettingsInput = z.input<typeof settingsSchema>;
export type ImageSettings = Settings["images"][string];
export type HostSettings = Settings["hosts"][string];

/** Thrown for bad settings; `problems` holds one line per problem. */
export class SettingsError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
}

function keyPath(path: PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : String(p))).join(".").replace(/\.\[/g, "[") || "(root)";
}

/** One line per zod issue: the key path, what is wrong, and the fix. */
function describeIssue(issue: z.core.$ZodIssue): string[] {
  const at = keyPath(issue.path);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => `${at === "(root)" ? k : `${at}.${k}`}: unknown key (remove it or check its spelling)`);
    case "invalid_type":
      return [`${at}: expected ${issue.expected}${issue.input === undefined ? " (missing)" : `, got ${JSON.stringify(issue.input)}`}`];
    case "invalid_value":
      return [`${at}: must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`];
    case "invalid_key": {
      const key = String(issue.path[issue.path.length - 1]);
      return [`${at}: "${key}" is not a valid id: ${issue.issues[0]?.message ?? issue.message}`];
    }
    default:
      return [`${at}: ${issue.message}${"input" in issue && typeof issue.input === "string" ? ` (got "${issue.input}")` : ""}`];
  }
}

/** Validates parsed JSON. Throws SettingsError naming every problem. */
export function parseSettings(raw: unknown, file = "settings"): Settings {
  const result = settingsSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new SettingsError(file, result.error.issues.flatMap(describeIssue));
  return result.data;
}

/** Reads and validates a settings file. */
export function loadSettings(file: string): Settings {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new SettingsError(file, [`cannot read the settings file: ${(e as NodeJS.ErrnoException).code ?? e}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SettingsError(file, [`not valid JSON: ${(e as Error).message}`]);
  }
  return parseSettings(raw, file);
}

/** The JSON Schema published for editors (infra.schema.json). */
export function settingsJsonSchema(): unknown {
  return z.toJSONSchema(settingsSchema, { io: "input", unrepresentable: "any" });
}
