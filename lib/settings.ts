/**
 * The settings file (infra.json by default, or the file named by INFRA_CONFIG).
 * The keys are a user-facing contract: scripts and docs depend on them.
 */
import { readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import { z } from "zod";
import { MAX_FAMILY, MIN_IMAGE_HASH_CHARS, OCI_VERSION, PROJECT_ID, REGION, ZONE } from "./gce.js";
import { unknownMachineType } from "./machine-types.js";
import { bucketName, cidr, flakeAttr, gceName, hostNixGc, labels, network, nixGc, sshPublicKey, stateDirectory, subnetwork } from "./settings-fields.js";
import { describeIssue, oneProblemPerValue } from "./settings-issues.js";
import { crossChecks, isSystemUser, rawProblems } from "./settings-rules.js";
import { hostSecretsSchema, secretLocationsSchema } from "./secrets.js";
import { editDistance, nearest, oneLine, shown } from "./text.js";

const image = z.strictObject({
  nixosConfiguration: flakeAttr.describe("nixosConfigurations attribute that defines the image."),
  family: gceName
    .refine((family) => family.length <= MAX_FAMILY, {
      message: `must be at most ${MAX_FAMILY} characters (image names are <family>-<digest> and keep ${MIN_IMAGE_HASH_CHARS} digest characters)`,
    })
    .describe("GCE image family. Image names are <family>-<digest of the store path, guest OS features, source and storage location>."),
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
  machineType: z
    .string()
    .superRefine((type, ctx) => {
      const problem = unknownMachineType(type);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe("GCE machine type, such as e2-standard-2 or n2-custom-4-8192 (lib/machine-types.ts lists the series and shapes)."),
  diskSizeGb: z.number().int().min(10).max(65536).default(20).describe("Boot disk size in GB. Default 20."),
  diskType: z.enum(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"]).default("pd-balanced").describe("Boot disk type. C4, C4A, C4D and N4 boot only from hyperdisk-balanced; E2, N1, T2A, C2 and C2D only from pd-* (lib/machine-types.ts)."),
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
    .describe("Extra network tags (at most 64), each once."),
  labels: labels.default({}).describe("Labels on this host's VM, besides the top-level labels."),
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
  nixGc: hostNixGc,
  deletionProtection: z
    .boolean()
    .default(false)
    .describe("Google refuses to delete the VM. Not with recreateOnImageChange. Apply false on its own before removing the host or replacing its VM."),
  recreateOnImageChange: z
    .boolean()
    .default(false)
    .describe("Replace the VM when its image changes. Default false: the image is only the first boot; deploy-rs converges."),
  runsOciImages: z.array(z.string()).default([]).describe("Ids of ociImages the host may pull: grants it read access to the repository (the whole repository). Nothing on the host runs them by itself."),
  secrets: hostSecretsSchema,
});

const ociImage = z.strictObject({
  package: flakeAttr.describe("packages.<system> attribute that builds the image (a dockerTools image archive); one per image, neither deploy-rs nor deploy.package."),
  version: z
    .string()
    .regex(OCI_VERSION, { message: "must be a version such as 1.2.0 (letters, digits, '.', '_', '-')" })
    .describe("Version; the image is tagged <version>-<store hash>."),
  user: z
    .string()
    // By number, or a name the image defines: fakeNss gives it root and nobody only, and a runtime refuses another name at start.
    .regex(/^(\d{1,10}|root|nobody)(:\d{1,10})?$/, { message: "must be a uid[:gid] such as 65534:65534 or 0, or root or nobody (the only names the image defines)" })
    .optional()
    .describe("User the container runs as (the image config's User): a uid[:gid], or root or nobody. Default 65534:65534 (nobody); \"0\" runs it as root."),
});

const backend = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("local").describe("local keeps each stack's state in terraform.<stack>.tfstate at the project root; gcs in bucket, under prefix."),
  }),
  z.strictObject({
    type: z.literal("gcs"),
    bucket: bucketName.describe("State bucket (npm run synth, then cdktf deploy bootstrap creates it)."),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9._/-]+$/, { message: "must be a path of letters, digits, '.', '_', '-' and '/', such as nixos-gce" })
      .default("nixos-gce").describe("Each stack stores its state under <prefix>/<stack>."),
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
  project: z
    .string()
    .regex(PROJECT_ID, { message: "must be a Google Cloud project id (6-30 lowercase letters, digits, '-')" })
    .describe("Google Cloud project id."),
  region: z
    .string()
    .regex(REGION, { message: "must be a region such as europe-west1" })
    .describe("Region of the registry and, by default, of the image bucket."),
  zone: z
    .string()
    .regex(ZONE, { message: "must be a zone such as europe-west1-b" })
    .describe("Zone of the VMs."),
  flake: z
    .string()
    .min(1)
    // Steps append "#<attribute>" and pass the reference as one argument: a "#" or a leading "-" would change what Nix reads.
    .regex(/^[^#-][^#]*$/, { message: "must be a flake reference without '#' (the attributes come from the settings) and not starting with '-', such as . or github:org/repo" })
    // The reference is written to cdk.tf.json, saved plans and every step's log;
    // input: undefined keeps the password out of the message too.
    .superRefine((flake, ctx) => {
      // A password (user:password@), a user of an http(s) URL (where it is a
      // token: https://ghp_…@github.com), or a token parameter. An ssh user
      // (git+ssh://git@…) is no secret.
      const credential =
        /^[a-z][a-z0-9+.-]*:\/\/[^/?#@]*:[^/?#@]*@/i.test(flake) ||
        /^[a-z0-9+.-]*https?:\/\/[^/?#@]+@/i.test(flake) ||
        /[?&](access_token|private_token|token|password|secret)=/i.test(flake);
      if (credential) {
        ctx.addIssue({
          code: "custom",
          message:
            "must not carry a credential in its URL (user:password@, a token as an http(s) user, or a token parameter): the reference is written to cdk.tf.json, saved plans, step logs and the lock file; give Nix the token through nix.conf access-tokens or a git credential helper",
          input: undefined,
        });
      }
    })
    .default(".")
    .describe("Flake reference. Relative paths are relative to the project root. Default \".\"."),
  system: z.enum(["x86_64-linux", "aarch64-linux"]).default("x86_64-linux").describe("Nix system of the hosts and OCI images; it sets the boot disks' architecture (X86_64 or ARM64)."),
  imageBucket: bucketName.describe(
    "Private bucket for image tarballs. A created one is deleted with everything in it when it is replaced or destroyed: keep nothing else there.",
  ),
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
  backend: backend
    .default({ type: "local" })
    .describe('Where Terraform keeps state: {"type":"local"}, or {"type":"gcs","bucket":...} (the workflows require gcs).'),
  deploy: z
    .strictObject({
      user: z
        .string()
        .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: "must be a user name: up to 32 lowercase letters, digits, '_' and '-', starting with a letter or '_'" })
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
      confirmTimeoutSeconds: z
        .number()
        .int()
        .min(1)
        .max(3600)
        .default(DEPLOY_DEFAULT.confirmTimeoutSeconds)
        .describe("deploy-rs --confirm-timeout: how long the host waits for the deployer's confirmation before it rolls back."),
      activationTimeoutSeconds: z
        .number()
        .int()
        .min(1)
        .max(7200)
        .default(DEPLOY_DEFAULT.activationTimeoutSeconds)
        .describe("deploy-rs --activation-timeout."),
    })
    .default(DEPLOY_DEFAULT)
    .describe("How the deploy step runs deploy-rs."),
  registry: z
    .strictObject({
      repository: gceName.default(REGISTRY_DEFAULT.repository).describe("Artifact Registry repository id."),
      keepVersions: z.number().int().min(1).max(1000).default(REGISTRY_DEFAULT.keepVersions).describe("Cleanup policy: keep the newest N versions."),
    })
    .default(REGISTRY_DEFAULT)
    .describe("The Artifact Registry repository of the OCI images."),
  nixGc,
  secretLocations: secretLocationsSchema,
  images: z.record(gceName, image).describe("Base images, by id."),
  hosts: z.record(gceName, host).default({}).describe("VMs, by id. The id is the instance name; under recreateOnImageChange it is <id>-<suffix>, the suffix from the image and the boot disk."),
  ociImages: z.record(gceName, ociImage).default({}).describe("OCI images pushed to Artifact Registry, by id."),
});

/** The settings as the schema reads them, before the rules that span keys (lib/settings-rules.ts). */
export type SettingsShape = z.output<typeof settingsBase>;

const settingsSchema = settingsBase.superRefine((s, ctx) => {
  for (const problem of crossChecks(s)) ctx.addIssue({ code: "custom", ...problem });
});

export { DEFAULT_LABELS } from "./settings-rules.js";
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

/** The keys the schema allows in the object at `path` (JSON Schema of the input). */
function knownKeys(path: readonly PropertyKey[]): string[] {
  type Node = { properties?: Record<string, Node>; additionalProperties?: Node | boolean; items?: Node; oneOf?: Node[]; anyOf?: Node[] };
  let nodes: Node[] = [settingsJsonSchema() as Node];
  const expand = (ns: Node[]): Node[] => ns.flatMap((n) => [n, ...expand([...(n.oneOf ?? []), ...(n.anyOf ?? [])])]);
  for (const seg of path) {
    nodes = expand(nodes).flatMap((n) => {
      const next = typeof seg === "number" ? n.items : (n.properties?.[String(seg)] ?? n.additionalProperties);
      return next && typeof next === "object" ? [next] : [];
    });
  }
  return [...new Set(expand(nodes).flatMap((n) => Object.keys(n.properties ?? {})))];
}

function spellingHint(key: string, path: readonly PropertyKey[]): string {
  const guess = nearest(key, knownKeys(path));
  return guess && editDistance(key.toLowerCase(), guess.toLowerCase()) <= 2 ? `did you mean ${shown(guess)}?` : "remove it or check its spelling";
}

/** Validates parsed JSON. Throws SettingsError naming every problem. */
export function parseSettings(raw: unknown, file = "settings"): Settings {
  const early = rawProblems(raw);
  if (early.length) throw new SettingsError(file, early);
  const result = settingsSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new SettingsError(file, oneProblemPerValue(result.error.issues).flatMap((issue) => describeIssue(issue, spellingHint)));
  return result.data;
}

/** Why the settings file cannot be read, and what to do: `namedBy` (INFRA_CONFIG, or a flag) is the usual culprit. */
function unreadable(code: string, file: string, namedBy: string): string {
  const from = process.env.INIT_CWD; // npm run's caller's directory; npm runs the script at the project root
  const relative = !isAbsolute(file) && from && from !== process.cwd() ? `; a relative path is read from the project root, not from ${from}` : "";
  if (code === "ENOENT") return `does not exist; set ${namedBy} to your settings file${namedBy === "INFRA_CONFIG" ? ", or unset it to read infra.json at the project root" : ""}${relative}`;
  if (code === "EISDIR") return `is a directory; ${namedBy} names a JSON file, such as examples/offline.json`;
  if (code === "EACCES") return `cannot be read (permission denied); make it readable, or set ${namedBy} to another file`;
  return `cannot read the settings file: ${code}`;
}

/**
 * JSON.parse's message with "line L column C" for the offset it names: Node 20
 * gives "at position N", or for a stray character a quote of the 10 characters
 * either side of it, or nothing when the text ends early.
 */
function jsonErrorWithLine(text: string, message: string): string {
  let at = Number(/ at position (\d+)/.exec(message)?.[1] ?? NaN);
  const token = /^Unexpected token '([\s\S])', (\.\.\.)?"([\s\S]*?)"(\.\.\.)? is not valid JSON$/.exec(message);
  if (token) {
    const [, char, before, quote, after] = token;
    at = before ? text.indexOf(quote) + 10 : after ? quote.length - 10 : quote.indexOf(char);
  }
  if (/^Unexpected end of JSON input/.test(message)) at = text.length;
  const what = oneLine(message.replace(/ in JSON at position \d+.*$/, "").replace(/, (\.\.\.)?"[\s\S]*$/, "")).slice(0, 200);
  if (!(at >= 0 && at <= text.length)) return what;
  const lines = text.slice(0, at).split("\n");
  const comma = /,\s*$/.test(text.slice(0, at)) && /^[}\]]/.test(text.slice(at)) ? " (remove the comma before it: JSON allows no trailing comma)" : "";
  return `line ${lines.length} column ${lines[lines.length - 1].length + 1}: ${what}${comma}`;
}

/** Reads and validates a settings file. `namedBy` is what gave its path, for the advice when it cannot be read. */
export function loadSettings(file: string, namedBy = "INFRA_CONFIG"): Settings {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new SettingsError(file, [unreadable((e as NodeJS.ErrnoException).code ?? String(e), file, namedBy)]);
  }
  let raw: unknown;
  try {
    // Some Windows editors start UTF-8 files with a byte order mark, which JSON.parse refuses.
    text = text.replace(/^\uFEFF/, "");
    raw = JSON.parse(text);
  } catch (e) {
    throw new SettingsError(file, [`not valid JSON: ${jsonErrorWithLine(text, (e as Error).message)}`]);
  }
  return parseSettings(raw, file);
}

/** The JSON Schema published for editors (infra.schema.json). */
export function settingsJsonSchema(): unknown {
  return z.toJSONSchema(settingsSchema, { io: "input", unrepresentable: "any" });
}
