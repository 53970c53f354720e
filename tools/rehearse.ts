/**
 * The rehearsal: the synthesized infra stack rewritten so that real Terraform
 * core plans and applies it offline. Terraform itself then decides order,
 * replacement and destroy steps, and the steps' scripts run for real.
 *
 * - Every google_* resource and data source becomes a `terraform_data`
 *   stand-in: `input` carries its configuration, `triggers_replace` the
 *   attributes Google's API cannot update (FORCE_NEW), and references to it
 *   resolve to that input or, for attributes Google computes, to values
 *   derived from the stand-in (COMPUTED).
 * - Every null_resource becomes `terraform_data` with `triggers_replace` =
 *   its triggers; provisioners are kept as they are.
 * - Providers go, and the state is local, in the rehearsal directory.
 *
 * Pure functions only: bin/rehearse.ts and the tests run Terraform.
 */
import { literal } from "../lib/steps.js";
import { DEPLOY_SCRIPT } from "../constructs/deploy-rs.js";
import { UPLOAD_IMAGE_SCRIPT } from "../constructs/gce-image.js";
import { PRUNE_GC_ROOTS_SCRIPT } from "../constructs/gc-roots.js";
import { BUILD_IMAGE_SCRIPT } from "../constructs/nix-image.js";
import { PUSH_OCI_SCRIPT } from "../constructs/oci-image.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Block = Record<string, any>;

/**
 * Attributes whose change makes Google create a new resource, read from
 * hashicorp/terraform-provider-google v6.50.0 (the release
 * @cdktf/provider-google 16.12.1 wraps): `ForceNew: true` in the schemas of
 * google/services/<service>/resource_<type>.go, of
 * tpgiamresource/resource_iam_member.go and the iam_<type>.go parent schemas
 * for IAM members, plus compute_instance's CustomizeDiff ForceNewIf on
 * metadata_startup_script (Secret Manager's from a later version of
 * those files: 6.50.0's were not at hand). Paths are HCL attribute paths without block
 * indices; `x.#` is the number of `x` blocks (boot_disk and
 * network_interface are ForceNew as blocks); a block's path stands for all
 * of its attributes when they all are ForceNew. Every other attribute is
 * updated in place, as Google does (compute_instance's machine_type and
 * service_account by stopping the VM; network_interface's network too).
 * A google_* type missing here stops the rehearsal instead of guessing.
 */
export const FORCE_NEW: Readonly<Record<string, readonly string[]>> = {
  google_compute_image: [
    "project", "name", "description", "disk_size_gb", "family", "guest_os_features", "image_encryption_key",
    "licenses", "raw_disk", "shielded_instance_initial_state", "source_disk", "source_disk_encryption_key",
    "source_image", "source_image_encryption_key", "source_snapshot", "source_snapshot_encryption_key", "storage_locations",
  ],
  google_compute_instance: [
    "project", "name", "zone", "hostname", "metadata_startup_script", "params", "key_revocation_action_type",
    "confidential_instance_config", "guest_accelerator", "instance_encryption_key", "network_performance_config",
    "reservation_affinity", "scratch_disk", "advanced_machine_features.enable_uefi_networking", "attached_disk.force_attach",
    "boot_disk.#", "boot_disk.device_name", "boot_disk.mode", "boot_disk.source", "boot_disk.disk_encryption_key_raw",
    "boot_disk.disk_encryption_key_rsa", "boot_disk.disk_encryption_service_account", "boot_disk.force_attach",
    "boot_disk.kms_key_self_link", "boot_disk.guest_os_features",
    "boot_disk.initialize_params.image", "boot_disk.initialize_params.size", "boot_disk.initialize_params.type",
    "boot_disk.initialize_params.snapshot", "boot_disk.initialize_params.architecture",
    "boot_disk.initialize_params.enable_confidential_compute", "boot_disk.initialize_params.labels",
    "boot_disk.initialize_params.provisioned_iops", "boot_disk.initialize_params.provisioned_throughput",
    "boot_disk.initialize_params.resource_manager_tags", "boot_disk.initialize_params.resource_policies",
    "boot_disk.initialize_params.storage_pool", "boot_disk.initialize_params.source_image_encryption_key",
    "boot_disk.initialize_params.source_snapshot_encryption_key",
    "network_interface.#", "network_interface.network_attachment", "network_interface.nic_type", "network_interface.queue_count",
    "network_interface.ipv6_access_config.external_ipv6", "network_interface.ipv6_access_config.external_ipv6_prefix_length",
    "network_interface.ipv6_access_config.name",
    "scheduling.local_ssd_recovery_timeout", "scheduling.max_run_duration", "scheduling.on_instance_stop_action",
    "scheduling.preemptible", "scheduling.provisioning_model", "scheduling.termination_time",
  ],
  google_compute_firewall: ["project", "name", "direction", "params"],
  google_compute_image_iam_member: ["project", "image", "role", "member", "condition"],
  google_service_account: ["project", "account_id"],
  google_project_iam_member: ["project", "role", "member", "condition"],
  google_project_service: ["project", "service"],
  google_storage_bucket: ["project", "name", "location", "enable_object_retention", "custom_placement_config.data_locations", "hierarchical_namespace"],
  google_artifact_registry_repository: [
    "project", "location", "repository_id", "format", "kms_key_name", "mode", "remote_repository_config",
    "maven_config.allow_snapshot_overwrites", "maven_config.version_policy",
  ],
  google_artifact_registry_repository_iam_member: ["project", "location", "repository", "role", "member", "condition"],
  google_secret_manager_secret: [
    "project", "secret_id", "ttl", "rotation.rotation_period", "replication.auto.#", "replication.user_managed.#",
    "replication.user_managed.replicas.#", "replication.user_managed.replicas.location",
  ],
  google_secret_manager_secret_iam_member: ["project", "secret_id", "role", "member", "condition"],
};

/**
 * Types with `labels` and the computed `effective_labels` (provider 6.50.0's
 * SetLabelsDiff): the provider's default_labels are merged into each, so a
 * change to them updates these resources in place.
 */
const LABELLED: ReadonlySet<string> = new Set([
  "google_compute_image", "google_compute_instance", "google_storage_bucket", "google_artifact_registry_repository",
  "google_secret_manager_secret",
]);

/**
 * What the provider does to what a resource holds when it deletes it,
 * acted out on the doubles as the stand-in is destroyed (a destroy-time
 * provisioner: run by `terraform destroy` and by a replacement that destroys
 * first, not for a deposed or removed stand-in). A bucket
 * (resource_storage_bucket.go, 6.50.0): while it holds objects, the provider
 * refuses unless force_destroy, which deletes them with it. The rehearsal's
 * buckets are directories of the gcloud double, `$GCS_DOUBLE_DIR/<name>`.
 */
const DELETED_BY_PROVIDER: Readonly<Record<string, Block>> = {
  google_storage_bucket: {
    "local-exec": {
      when: "destroy",
      interpreter: ["bash", "-c"],
      command: [
        "set -euo pipefail",
        'dir="$GCS_DOUBLE_DIR/$BUCKET"',
        'if [ "$FORCE_DESTROY" != true ] && [ -n "$(find "$dir" -type f -print -quit 2>/dev/null)" ]; then',
        `  echo "Error trying to delete bucket $BUCKET containing objects without" '\`force_destroy\`' "set to true" >&2`,
        "  exit 1",
        "fi",
        'rm -rf "$dir"',
      ].join("\n"),
      environment: { BUCKET: "${self.input.name}", FORCE_DESTROY: "${try(self.input.force_destroy, false)}" },
    },
  },
};

/** What a stand-in's attribute resolves to: an HCL expression. */
interface StandInRef {
  /** `terraform_data.<name>`, with the instance key if any. */
  readonly address: string;
  /** The configuration as the stand-in's input carries it. */
  readonly config: Block;
  readonly defaults: ProviderDefaults;
}
interface ProviderDefaults {
  readonly project?: string;
  readonly region?: string;
  readonly zone?: string;
}

/** An attribute of the configuration (from the stand-in's output), or the provider's default. */
function attr(ref: StandInRef, name: string): string {
  if (name in ref.config) return `${ref.address}.input.${name}`;
  const fallback = ref.defaults[name as keyof ProviderDefaults];
  if (fallback !== undefined) return JSON.stringify(fallback);
  throw new RehearsalError(`${ref.address} has no "${name}" and the provider sets no default; set it in the construct`);
}
/** A string of literal parts and expressions. */
function concat(parts: string[]): string {
  return `join("", [${parts.join(", ")}])`;
}
/** Known only once the stand-in exists, like a value Google returns on create. */
function afterCreate(ref: StandInRef, parts: string[]): string {
  return concat([`substr(${ref.address}.id, 0, 0)`, ...parts]);
}
const lit = JSON.stringify;

/**
 * Attributes Google computes, by normalized path (no indices), as
 * expressions over the stand-in. Values known at plan in the provider (a
 * service account's email: CustomizeDiff sets it) stay known; the others
 * are unknown until the stand-in is created, and change when it is replaced.
 */
const COMPUTED: Readonly<Record<string, Readonly<Record<string, (r: StandInRef) => string>>>> = {
  google_compute_image: {
    self_link: (r) => afterCreate(r, [lit("https://www.googleapis.com/compute/v1/projects/"), attr(r, "project"), lit("/global/images/"), attr(r, "name")]),
  },
  google_compute_instance: {
    instance_id: (r) => `${r.address}.id`,
    self_link: (r) =>
      afterCreate(r, [lit("https://www.googleapis.com/compute/v1/projects/"), attr(r, "project"), lit("/zones/"), attr(r, "zone"), lit("/instances/"), attr(r, "name")]),
    "network_interface.network_ip": (r) => afterCreate(r, [lit("10.132.0.2")]),
    // Loopback: a direct-SSH deploy's wait reaches the rehearsal's banner double there (DEPLOY_SSH_PORT), never a real host.
    "network_interface.access_config.nat_ip": (r) => afterCreate(r, [lit("127.0.0.1")]),
  },
  google_service_account: {
    email: (r) => concat([attr(r, "account_id"), lit("@"), attr(r, "project"), lit(".iam.gserviceaccount.com")]),
    member: (r) => concat([lit("serviceAccount:"), attr(r, "account_id"), lit("@"), attr(r, "project"), lit(".iam.gserviceaccount.com")]),
    name: (r) => concat([lit("projects/"), attr(r, "project"), lit("/serviceAccounts/"), attr(r, "account_id"), lit("@"), attr(r, "project"), lit(".iam.gserviceaccount.com")]),
    unique_id: (r) => `${r.address}.id`,
  },
  google_storage_bucket: {
    url: (r) => afterCreate(r, [lit("gs://"), attr(r, "name")]),
    self_link: (r) => afterCreate(r, [lit("https://www.googleapis.com/storage/v1/b/"), attr(r, "name")]),
  },
  google_artifact_registry_repository: {
    name: (r) => afterCreate(r, [attr(r, "repository_id")]),
  },
  data_google_artifact_registry_docker_image: {
    // <location>-docker.pkg.dev/<project>/<repository>/<image>@sha256:<digest>; the digest is read at apply.
    self_link: (r) =>
      concat([
        attr(r, "location"), lit("-docker.pkg.dev/"), attr(r, "project"), lit("/"), attr(r, "repository_id"), lit("/"),
        `split(":", split("@", ${r.address}.input.image_name)[0])[0]`, lit("@sha256:"), `sha256(${r.address}.id)`,
      ]),
  },
};

/** What the rehearsal reports each stand-in as. */
export type StepKind = "build" | "upload" | "image" | "gcroots" | "instance" | "deploy" | "push" | "other";
export const STEP_KINDS: readonly StepKind[] = ["build", "upload", "image", "instance", "deploy", "gcroots", "push", "other"];

const SCRIPT_KINDS: Record<string, StepKind> = {
  [BUILD_IMAGE_SCRIPT]: "build",
  [UPLOAD_IMAGE_SCRIPT]: "upload",
  [PRUNE_GC_ROOTS_SCRIPT]: "gcroots",
  [DEPLOY_SCRIPT]: "deploy",
  [PUSH_OCI_SCRIPT]: "push",
};
export const TYPE_KINDS: Record<string, StepKind> = { google_compute_image: "image", google_compute_instance: "instance" };

export interface StandIn {
  /** The address in the synthesized stack, e.g. `google_compute_instance.vm-vm_Instance_C70BC375`. */
  readonly original: string;
  readonly kind: StepKind;
  /** The construct path (`infra/vm-vm/Instance`), for messages. */
  readonly path?: string;
}

export interface RehearsalOptions {
  /**
   * Values every step's local-exec environment gets, over the synthesized
   * ones (e.g. DEPLOY_RS_INSTALLABLE of a deploy-rs double). Only keys the
   * step already reads are replaced; nothing else is added.
   * @default {}
   */
  readonly stepEnvironment?: Record<string, string>;
  /**
   * Pushes OCI images to this registry (`host:port`, plain HTTP, no
   * credentials) instead of Artifact Registry. @default undefined (unchanged)
   */
  readonly ociRegistry?: string;
}

export interface Rehearsal {
  /** The rewritten stack, as cdk.tf.json. */
  readonly config: Block;
  /** Rehearsal address (`terraform_data.<name>`) → what it stands in for. */
  readonly standIns: Record<string, StandIn>;
}

export class RehearsalError extends Error {
  constructor(message: string) {
    super(`rehearse: ${message}`);
    this.name = "RehearsalError";
  }
}

/** The stand-in's name: the original type and logical id, recognizable in plans and events. */
function standInName(type: string, name: string, data = false): string {
  return `${data ? "data_" : ""}${type}__${name}`;
}

const META = new Set(["//", "depends_on", "lifecycle", "provisioner", "connection", "count", "for_each", "provider"]);
const TRAVERSAL = /(?<![\w.-])(data\.)?(google_[a-z0-9_]+|null_resource|self)\.([A-Za-z_][\w-]*)(\[(?:\d+|"[^"]*")\])?((?:\.[A-Za-z_][\w-]*|\[(?:\d+|"[^"]*")\])*)/g;

/** Rewrites the synthesized infra stack (cdk.tf.json) into the rehearsal. */
export function rehearsalConfig(stack: Block, options: RehearsalOptions = {}): Rehearsal {
  const google = (stack.provider?.google ?? [])[0] ?? {};
  const defaults: ProviderDefaults = { project: google.project, region: google.region, zone: google.zone };
  const defaultLabels: Record<string, string> | undefined = google.default_labels;
  for (const type of Object.keys(stack.resource ?? {})) {
    if (type === "null_resource" || type === "terraform_data") continue;
    if (!type.startsWith("google_")) throw new RehearsalError(`no stand-in for resource type ${type}; the rehearsal knows google_*, null_resource and terraform_data`);
    if (!FORCE_NEW[type]) throw new RehearsalError(`${type} has no entry in FORCE_NEW (tools/rehearse.ts); add its ForceNew attributes from the provider's schema`);
  }
  for (const type of Object.keys(stack.data ?? {})) {
    if (!type.startsWith("google_")) throw new RehearsalError(`no stand-in for data source ${type}`);
  }

  // Stand-in inputs first (with ignored attributes dropped), so references can look them up.
  const configs = new Map<string, Block>();
  const dropped = new Map<string, string[]>();
  for (const [type, byName] of Object.entries<Record<string, Block>>(stack.resource ?? {})) {
    if (!type.startsWith("google_")) continue;
    for (const [name, block] of Object.entries(byName)) {
      const input: Block = {};
      for (const [key, value] of Object.entries(block)) if (!META.has(key)) input[key] = value;
      // The provider's default_labels reach every labelled resource (its effective_labels): a change updates them in place.
      if (LABELLED.has(type) && (defaultLabels || input.labels)) input.effective_labels = { ...defaultLabels, ...input.labels };
      const refs: string[] = [];
      for (const path of ignoredPaths(block)) refs.push(...dropPath(input, path));
      configs.set(`${type}.${name}`, input);
      dropped.set(`${type}.${name}`, refs);
    }
  }
  for (const [type, byName] of Object.entries<Record<string, Block>>(stack.data ?? {})) {
    for (const [name, block] of Object.entries(byName)) {
      const input: Block = {};
      for (const [key, value] of Object.entries(block)) if (!META.has(key)) input[key] = value;
      configs.set(`data.${type}.${name}`, input);
    }
  }

  const rewriteTraversal: Rewriter = (data, type, name, key, rest) => {
    if (type === "self") {
      // null_resource's self.triggers is terraform_data's self.triggers_replace.
      return name === "triggers" ? `self.triggers_replace${key ?? ""}${rest}` : `self.${name}${key ?? ""}${rest}`;
    }
    const address = `terraform_data.${standInName(type, name, Boolean(data))}${key ?? ""}`;
    const steps = parseSteps(rest);
    if (type === "null_resource") {
      if (steps[0]?.name === "triggers") return `${address}.triggers_replace${rest.slice(".triggers".length)}`;
      return `${address}${rest}`;
    }
    const original = `${data ? "data." : ""}${type}.${name}`;
    const config = configs.get(original);
    if (!config) throw new RehearsalError(`${original} is referenced but not in the stack`);
    if (steps.length === 0) throw new RehearsalError(`${original} is referenced as a whole; reference one of its attributes`);
    const ref: StandInRef = { address, config, defaults };
    const normalized = steps.filter((s) => s.name !== undefined).map((s) => s.name).join(".");
    const computed = COMPUTED[data ? `data_${type}` : type] ?? {};
    for (const [path, expression] of Object.entries(computed)) {
      if (normalized !== path) continue;
      const value = expression(ref);
      return /^[\w.-]+$/.test(value) ? value : `(${value})`;
    }
    if (steps.length === 1 && steps[0].name === "id") return `${address}.id`;
    const head = steps[0].name!;
    if (head in config) return `${address}.input${configPath(config, steps)}`;
    if (steps.length === 1 && head in defaults && defaults[head as keyof ProviderDefaults] !== undefined) return lit(defaults[head as keyof ProviderDefaults]);
    throw new RehearsalError(
      `${original}.${normalized} is read, but the rehearsal has no value for it: not in its configuration and not in COMPUTED (tools/rehearse.ts)`,
    );
  };
  const rewrite = <T>(value: T): T => rewriteValue(value, rewriteTraversal) as T;

  const resources: Record<string, Block> = {};
  const standIns: Record<string, StandIn> = {};
  const add = (name: string, block: Block, standIn: StandIn) => {
    resources[name] = block;
    standIns[`terraform_data.${name}`] = standIn;
  };

  for (const [type, byName] of Object.entries<Record<string, Block>>(stack.resource ?? {})) {
    for (const [name, block] of Object.entries(byName)) {
      const original = `${type}.${name}`;
      const path: string | undefined = block["//"]?.metadata?.path;
      if (type === "terraform_data") {
        add(name, rewrite(block), { original, kind: "other", path });
        continue;
      }
      const out: Block = { "//": { ...(block["//"] ?? {}), rehearsal: { stands_in_for: original } } };
      for (const key of ["count", "for_each"]) if (key in block) out[key] = rewrite(block[key]);
      if (type === "null_resource") {
        if (block.triggers !== undefined) out.triggers_replace = rewrite(block.triggers);
        const provisioners = (block.provisioner ?? []).map((p: Block) => rewrite(withStepEnvironment(p, options)));
        if (provisioners.length) out.provisioner = provisioners;
        const script: string | undefined = provisioners.map((p: Block) => p["local-exec"]?.command).find(Boolean);
        if (block.depends_on) out.depends_on = block.depends_on.map(mapAddress);
        if (block.lifecycle) out.lifecycle = lifecycleOf(block.lifecycle, (p) => (p === "triggers" ? "triggers_replace" : p));
        add(standInName(type, name), out, { original, kind: (script && SCRIPT_KINDS[script]) || "other", path });
        continue;
      }
      const input = configs.get(original)!;
      out.input = rewrite(input);
      const triggers = forceNewValues(input, FORCE_NEW[type]);
      if (Object.keys(triggers).length) out.triggers_replace = rewrite(triggers);
      // ignore_changes drops values, not dependencies: what they referred to still comes first.
      const after = new Set([...(block.depends_on ?? []).map(mapAddress), ...referencedAddresses(dropped.get(original) ?? [])]);
      if (after.size) out.depends_on = [...after].sort();
      if (block.provisioner) out.provisioner = block.provisioner.map((p: Block) => rewrite(withStepEnvironment(p, options)));
      if (DELETED_BY_PROVIDER[type]) out.provisioner = [...(out.provisioner ?? []), DELETED_BY_PROVIDER[type]];
      if (block.lifecycle) {
        const lifecycle = lifecycleOf(block.lifecycle, () => undefined);
        if (Object.keys(lifecycle).length) out.lifecycle = lifecycle;
      }
      add(standInName(type, name), out, { original, kind: TYPE_KINDS[type] ?? "other", path });
    }
  }
  for (const [type, byName] of Object.entries<Record<string, Block>>(stack.data ?? {})) {
    for (const [name, block] of Object.entries(byName)) {
      const original = `data.${type}.${name}`;
      const out: Block = { "//": { ...(block["//"] ?? {}), rehearsal: { stands_in_for: original } }, input: rewrite(configs.get(original)!) };
      if (block.depends_on) out.depends_on = block.depends_on.map(mapAddress);
      for (const key of ["count", "for_each"]) if (key in block) out[key] = rewrite(block[key]);
      add(standInName(type, name, true), out, { original, kind: "other", path: block["//"]?.metadata?.path });
    }
  }

  const config: Block = {};
  if (stack["//"]) config["//"] = stack["//"];
  const terraform: Block = { ...(stack.terraform ?? {}) };
  delete terraform.required_providers;
  delete terraform.cloud;
  terraform.backend = { local: { path: "terraform.tfstate" } };
  config.terraform = terraform;
  for (const key of ["variable", "locals", "output"]) if (stack[key]) config[key] = rewrite(stack[key]);
  config.resource = { terraform_data: resources };
  return { config, standIns };
}

/** `null_resource.x` / `google_y.z` / `data.google_y.z` in depends_on and replace_triggered_by. */
function mapAddress(address: string): string {
  const m = /^(data\.)?(google_[a-z0-9_]+|null_resource)\.([\w-]+)(.*)$/.exec(address);
  if (!m) return address;
  return `terraform_data.${standInName(m[2], m[3], Boolean(m[1]))}${m[4]}`;
}

function lifecycleOf(lifecycle: Block, ignored: (path: string) => string | undefined): Block {
  const out: Block = {};
  for (const key of ["create_before_destroy", "prevent_destroy"]) if (key in lifecycle) out[key] = lifecycle[key];
  if (lifecycle.replace_triggered_by) out.replace_triggered_by = lifecycle.replace_triggered_by.map(mapAddress);
  if (lifecycle.ignore_changes === "all") out.ignore_changes = "all";
  else if (Array.isArray(lifecycle.ignore_changes)) {
    const kept = lifecycle.ignore_changes.map(ignored).filter((p: string | undefined): p is string => p !== undefined);
    if (kept.length) out.ignore_changes = kept;
  }
  return out;
}

function ignoredPaths(block: Block): string[] {
  const ignore = block.lifecycle?.ignore_changes;
  if (ignore === "all") return Object.keys(block).filter((k) => !META.has(k));
  return Array.isArray(ignore) ? ignore : [];
}

/** `a[0].b[0].c` → ["a", "b", "c"]. */
function pathNames(path: string): string[] {
  return path.replace(/\[[^\]]*\]/g, "").split(".").filter(Boolean);
}

/** Removes the value at an ignore_changes path from the input; returns the references it held. */
function dropPath(input: Block, path: string): string[] {
  const names = pathNames(path);
  const refs: string[] = [];
  const walk = (node: any, depth: number) => {
    if (Array.isArray(node)) return node.forEach((n) => walk(n, depth));
    if (node === null || typeof node !== "object" || !(names[depth] in node)) return;
    if (depth === names.length - 1) {
      refs.push(JSON.stringify(node[names[depth]]));
      delete node[names[depth]];
    } else walk(node[names[depth]], depth + 1);
  };
  walk(input, 0);
  return refs;
}

/** The resource addresses interpolated in some strings, mapped to their stand-ins. */
function referencedAddresses(texts: string[]): string[] {
  const out = new Set<string>();
  for (const text of texts) {
    for (const m of text.matchAll(/\$\{(?:data\.)?(google_[a-z0-9_]+|null_resource)\.([\w-]+)/g)) {
      out.add(mapAddress(m[0].slice(2).split(".").slice(0, m[0].startsWith("${data.") ? 3 : 2).join(".")));
    }
  }
  return [...out];
}

/** triggers_replace: the configured values of the ForceNew attributes, keyed by path. */
export function forceNewValues(input: Block, paths: readonly string[]): Block {
  const out: Block = {};
  for (const path of paths) {
    const count = path.endsWith(".#");
    const names = (count ? path.slice(0, -2) : path).split(".");
    let values: any[] = [input];
    for (const name of names) {
      values = values
        .flatMap((v) => (Array.isArray(v) ? v : [v]))
        .filter((v) => v !== null && typeof v === "object" && name in v)
        .map((v) => v[name]);
    }
    if (values.length === 0) continue;
    if (count) out[path] = values.map((v) => (Array.isArray(v) ? v.length : 1)).reduce((a, b) => a + b, 0);
    else out[path] = values.length === 1 ? values[0] : values;
  }
  return out;
}

interface Step {
  readonly name?: string;
  readonly index?: string;
}
function parseSteps(rest: string): Step[] {
  return [...rest.matchAll(/\.([A-Za-z_][\w-]*)|(\[(?:\d+|"[^"]*")\])/g)].map((m) => (m[1] ? { name: m[1] } : { index: m[2] }));
}

/** The path into the stand-in's output: indices on single blocks (objects in cdk.tf.json) are dropped. */
function configPath(config: Block, steps: Step[]): string {
  let node: any = config;
  let out = "";
  for (const step of steps) {
    if (step.name !== undefined) {
      out += `.${step.name}`;
      node = node && typeof node === "object" ? node[step.name] : undefined;
    } else if (Array.isArray(node) || node === undefined) {
      out += step.index;
      node = Array.isArray(node) ? node[Number(step.index!.slice(1, -1))] : undefined;
    }
  }
  return out;
}

/** Replaces the step environment's values named in the options (only keys the step reads). */
function withStepEnvironment(provisioner: Block, options: RehearsalOptions): Block {
  const exec = provisioner["local-exec"];
  if (!exec?.environment) return provisioner;
  const environment: Record<string, string> = { ...exec.environment };
  for (const [key, value] of Object.entries(options.stepEnvironment ?? {})) {
    if (key in environment) environment[key] = literal(value);
  }
  if (options.ociRegistry && exec.command === PUSH_OCI_SCRIPT) {
    const repository = String(environment.OCI_REPOSITORY);
    environment.OCI_REPOSITORY = literal(`${options.ociRegistry}/${repository.split("/").pop()}`);
    environment.OCI_AUTH = "none";
    environment.OCI_TLS_VERIFY = "false";
  }
  return { ...provisioner, "local-exec": { ...exec, environment } };
}

type Rewriter = (data: string | undefined, type: string, name: string, key: string | undefined, rest: string) => string;

/** Rewrites every `${…}` interpolation in every string of a JSON value. */
function rewriteValue(value: Json | any, rewriter: Rewriter): any {
  if (typeof value === "string") return rewriteTemplate(value, rewriter);
  if (Array.isArray(value)) return value.map((v) => rewriteValue(v, rewriter));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === "//" ? v : rewriteValue(v, rewriter)]));
  }
  return value;
}

/** Rewrites the traversals inside `${…}` of a Terraform template string; `$${` stays literal. */
export function rewriteTemplate(text: string, rewriter: Rewriter): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("$${", i) || text.startsWith("%%{", i)) {
      out += text.slice(i, i + 3);
      i += 3;
      continue;
    }
    if (text.startsWith("${", i)) {
      const end = closingBrace(text, i + 2);
      const expression = text.slice(i + 2, end);
      out += "${" + expression.replace(TRAVERSAL, (_m, data, type, name, key, rest) => rewriter(data, type, name, key, rest)) + "}";
      i = end + 1;
      continue;
    }
    out += text[i];
    i += 1;
  }
  return out;
}

function closingBrace(text: string, from: number): number {
  let depth = 0;
  let quoted = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "\\") i += 1;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "{") depth += 1;
    else if (c === "}") {
      if (depth === 0) return i;
      depth -= 1;
    }
  }
  throw new RehearsalError(`unterminated interpolation in ${JSON.stringify(text)}`);
}
