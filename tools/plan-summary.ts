/**
 * A pull-request comment from Terraform's machine-readable plan: the JSON that
 * `terraform show -json <planfile>` prints (format_version 1.x, see Terraform's
 * "JSON Output Format" docs). Only names, store paths and image references are
 * shown; a change's `after` is never printed wholesale, and any value Terraform
 * marks sensitive or unknown is replaced by a placeholder.
 */
import { readFileSync } from "node:fs";
import { nameConflicts, type NamedChange, protectedDeletes } from "./name-conflicts.js";
import { NixError } from "../lib/nix.js";

/** First line of the comment; the workflow finds its own comment by it. */
export const PLAN_SUMMARY_MARKER = "<!-- nixos-gce-cdktf plan summary -->";

/** A plan file that cannot be read or is not a plan; the message names the file. */
export class PlanFileError extends NixError {}

/** The part of one `resource_changes[]` entry the summary reads; other keys are ignored. */
export interface ResourceChange {
  readonly address: string;
  readonly mode?: string;
  readonly type: string;
  readonly name?: string;
  /** Set when the change is about a deposed object (left over from create-before-destroy). */
  readonly deposed?: string;
  readonly action_reason?: string;
  readonly change: {
    readonly actions: readonly string[];
    readonly before?: unknown;
    readonly after?: unknown;
    readonly after_unknown?: unknown;
    readonly before_sensitive?: unknown;
    readonly after_sensitive?: unknown;
    readonly replace_paths?: readonly (readonly (string | number)[])[];
  };
}

export interface TerraformPlan {
  readonly format_version: string;
  readonly resource_changes: readonly ResourceChange[];
  readonly errored?: boolean;
  readonly complete?: boolean;
}

export interface StackPlan {
  readonly stack: string;
  readonly plan: TerraformPlan;
}

type Verb = "create" | "update" | "replace" | "destroy" | "forget" | "other";

/** Kinds in the order the comment lists them; the first match wins. */
const KINDS: readonly { readonly title: string; readonly matches: (c: ResourceChange) => boolean }[] = [
  { title: "Images", matches: (c) => c.type === "google_compute_image" },
  { title: "Image uploads", matches: (c) => nullStep(c) === "upload" },
  // Stacks from before the upload step managed the objects; their plan destroys them once.
  { title: "Image objects", matches: (c) => c.type === "google_storage_bucket_object" },
  { title: "Image builds", matches: (c) => nullStep(c) === "build" },
  // The one GcRoots step (construct id "GcRoots" at the stack's top); it re-runs with every image change.
  { title: "GC roots", matches: (c) => c.type === "null_resource" && c.address.startsWith("null_resource.GcRoots_Prune_") },
  { title: "Instances", matches: (c) => c.type === "google_compute_instance" },
  { title: "Deploy steps", matches: (c) => nullStep(c) === "deploy" },
  { title: "OCI pushes", matches: (c) => nullStep(c) === "oci" },
  { title: "OCI registry", matches: (c) => c.type.startsWith("google_artifact_registry_") },
  { title: "Firewalls", matches: (c) => c.type === "google_compute_firewall" },
  { title: "Secrets", matches: (c) => c.type === "google_secret_manager_secret" },
  { title: "Service accounts & IAM", matches: (c) => c.type === "google_service_account" || c.type.endsWith("_iam_member") },
  { title: "Buckets", matches: (c) => c.type === "google_storage_bucket" },
  { title: "Other", matches: () => true },
];

/**
 * Which step a null_resource is: construct ids `<image>-build`, `<host>-deploy`
 * and `<oci>-oci` end in `-build_`, `-deploy_`, `-oci_` inside the address,
 * and an upload is `<image>-image_Upload_` (GCE names have no underscore, so
 * the last such marker is the step's).
 */
type NullStep = "build" | "deploy" | "oci" | "upload";
const STEP_MARKERS: Readonly<Record<NullStep, string>> = { build: "-build_", deploy: "-deploy_", oci: "-oci_", upload: "-image_Upload_" };
function nullStep(c: ResourceChange): NullStep | undefined {
  if (c.type !== "null_resource") return undefined;
  let best: { step: NullStep; at: number } | undefined;
  for (const [step, marker] of Object.entries(STEP_MARKERS) as [NullStep, string][]) {
    const at = c.address.lastIndexOf(marker);
    if (at >= 0 && (!best || at > best.at)) best = { step, at };
  }
  return best?.step;
}

/** The one attribute each kind shows, and how it is called. */
const SHOWN: Readonly<Record<string, { readonly label: string; readonly path: readonly string[] }>> = {
  Images: { label: "image", path: ["name"] },
  "Image uploads": { label: "object", path: ["triggers", "object"] },
  "Image objects": { label: "object", path: ["name"] },
  "Image builds": { label: "store path", path: ["triggers", "planned_store_path"] },
  "GC roots": { label: "keeps", path: ["triggers", "keep"] },
  Instances: { label: "instance", path: ["name"] },
  "Deploy steps": { label: "system", path: ["triggers", "toplevel"] },
  "OCI pushes": { label: "reference", path: ["triggers", "reference"] },
};

const REASONS: Readonly<Record<string, string>> = {
  replace_because_tainted: "tainted",
  replace_by_request: "replacement requested (-replace)",
  replace_by_triggers: "replace_triggered_by",
  delete_because_no_resource_config: "no longer in the configuration",
  delete_because_no_module: "its module is gone",
  delete_because_wrong_repetition: "count/for_each changed",
  delete_because_count_index: "count index out of range",
  delete_because_each_key: "for_each key gone",
  delete_because_no_move_target: "moved target is gone",
};

function classify(actions: readonly string[]): { verb: Verb; order?: string } | undefined {
  switch (actions.join(",")) {
    case "no-op":
    case "read":
      return undefined;
    case "create":
      return { verb: "create" };
    case "update":
      return { verb: "update" };
    case "delete":
      return { verb: "destroy" };
    case "delete,create":
      return { verb: "replace", order: "destroy before create" };
    case "create,delete":
      return { verb: "replace", order: "create before destroy" };
    case "forget":
      return { verb: "forget" };
    default:
      return { verb: "other" };
  }
}

/** Parses and checks the text of `terraform show -json <planfile>`; `source` names it in errors. */
export function parsePlan(text: string, source: string): TerraformPlan {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new PlanFileError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const hint = "expected the output of `terraform show -json <planfile>`";
  if (!isObject(data)) throw new PlanFileError(`${source}: not a Terraform plan (${hint})`);
  if (typeof data.format_version !== "string") throw new PlanFileError(`${source}: not a Terraform plan: no format_version (${hint})`);
  const major = data.format_version.split(".")[0];
  if (major !== "1") {
    throw new PlanFileError(`${source}: plan format_version ${JSON.stringify(data.format_version)} is not supported (this reads 1.x)`);
  }
  let changes: unknown = data.resource_changes;
  if (changes === undefined && isObject(data.planned_values)) {
    // Terraform omits an empty resource_changes; planned_values says it is still a plan (a state has `values`).
    changes = [];
  }
  if (!Array.isArray(changes)) throw new PlanFileError(`${source}: not a Terraform plan: no resource_changes array (${hint})`);
  changes.forEach((c, i) => {
    const ok =
      isObject(c) &&
      typeof c.address === "string" &&
      typeof c.type === "string" &&
      isObject(c.change) &&
      Array.isArray(c.change.actions) &&
      c.change.actions.every((a) => typeof a === "string");
    if (!ok) throw new PlanFileError(`${source}: resource_changes[${i}] lacks address, type or change.actions`);
  });
  return {
    format_version: data.format_version,
    resource_changes: changes as ResourceChange[],
    errored: data.errored === true,
    complete: data.complete !== false,
  };
}

/** Reads and parses one plan file; a missing or unreadable file is a PlanFileError naming it. */
export function readPlanFile(path: string): TerraformPlan {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new PlanFileError(`${path}: no such file`);
    if (code === "EISDIR") throw new PlanFileError(`${path}: is a directory, not a plan JSON file`);
    throw new PlanFileError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parsePlan(text, path);
}

export interface PlanArg {
  readonly stack: string;
  /** A path, or "-" for standard input. */
  readonly file: string;
}

export const PLAN_SUMMARY_USAGE = "npm run plan-summary -- <stack>=<plan.json> [<stack>=<plan.json> ...]";

/** `<stack>=<file>` arguments; stack names are plain words so they are safe in Markdown. */
export function parsePlanArgs(args: readonly string[]): PlanArg[] {
  if (args.length === 0) throw new PlanFileError(`usage: ${PLAN_SUMMARY_USAGE}`);
  const seen = new Set<string>();
  const parsed = args.map((arg) => {
    const eq = arg.indexOf("=");
    if (eq < 0) throw new PlanFileError(`"${arg}" is not <stack>=<plan.json>; usage: ${PLAN_SUMMARY_USAGE}`);
    const stack = arg.slice(0, eq);
    const file = arg.slice(eq + 1);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(stack)) throw new PlanFileError(`"${stack}" is not a stack name (letters, digits, '.', '_', '-')`);
    if (!file) throw new PlanFileError(`no plan file given for stack ${stack}; usage: ${PLAN_SUMMARY_USAGE}`);
    if (seen.has(stack)) throw new PlanFileError(`stack ${stack} is given twice`);
    seen.add(stack);
    return { stack, file };
  });
  if (parsed.filter((p) => p.file === "-").length > 1) throw new PlanFileError(`only one stack can read its plan from stdin (-)`);
  return parsed;
}

interface Line {
  readonly verb: Verb;
  readonly text: string;
}

/** Deleting a secret deletes its versions: Secret Manager keeps no value to restore. */
function secretDeletes(changes: readonly NamedChange[]): string[] {
  return changes
    .filter((c) => c.type === "google_secret_manager_secret" && c.actions.includes("delete"))
    .map((c) =>
      c.actions.includes("create")
        ? `${c.address} would be replaced, its versions deleted: add the value again after the apply (gcloud secrets versions add ${String(c.before?.secret_id ?? "NAME")} --data-file=FILE)`
        : `${c.address} would be deleted with all its versions: its values are gone for good`,
    );
}

/** The comment: marker, then one section per stack in the order given. */
export function renderPlanSummary(stacks: readonly StackPlan[]): string {
  const out = [PLAN_SUMMARY_MARKER, "## Terraform plan", ""];
  for (const { stack, plan } of stacks) {
    out.push(`### Stack \`${code(stack)}\``, "");
    if (plan.errored) out.push("> **Warning:** Terraform reported errors while planning; this plan is incomplete.", "");
    else if (plan.complete === false) out.push("> **Note:** the plan is not complete (some changes are deferred to a later plan).", "");
    // Terraform cannot see names; Google refuses a second resource under one (a renamed construct id, say),
    // and the provider refuses to delete a protected VM.
    const changes = plan.resource_changes.map((c) => ({
      address: c.address,
      type: c.type,
      actions: c.change.actions,
      before: objectOrNone(c.change.before),
      after: objectOrNone(c.change.after),
    }));
    for (const conflict of [...nameConflicts(changes), ...protectedDeletes(changes), ...secretDeletes(changes)]) {
      out.push(`> **Warning:** ${code(conflict, 600)}`, "");
    }
    const groups = new Map<string, Line[]>(KINDS.map((k) => [k.title, []]));
    const counts: Record<Verb, number> = { create: 0, update: 0, replace: 0, destroy: 0, forget: 0, other: 0 };
    const managed = plan.resource_changes.filter((c) => c.mode !== "data" && !c.address.startsWith("data."));
    const ordered = [...managed].sort((a, b) => cmp(a.address, b.address) || cmp(a.deposed ?? "", b.deposed ?? ""));
    for (const c of ordered) {
      const kind = classify(c.change.actions);
      if (!kind) continue;
      counts[kind.verb] += 1;
      const title = KINDS.find((k) => k.matches(c))!.title;
      groups.get(title)!.push({ verb: kind.verb, text: bullet(c, kind, title) });
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    if (total === 0) {
      out.push("No changes.", "");
      continue;
    }
    const parts = [`${counts.create} to add`, `${counts.update} to change`, `${counts.replace} to replace`, `${counts.destroy} to destroy`];
    if (counts.forget) parts.push(`${counts.forget} to forget`);
    if (counts.other) parts.push(`${counts.other} with other actions`);
    out.push(parts.join(", "), "");
    for (const [title, lines] of groups) {
      if (lines.length === 0) continue;
      out.push(`**${title}**`, "", ...lines.map((l) => l.text), "");
    }
  }
  out.push("<sub>From `terraform show -json`; only names, store paths and image references are shown.</sub>", "");
  return out.join("\n");
}

function bullet(c: ResourceChange, kind: { verb: Verb; order?: string }, title: string): string {
  const action =
    kind.verb === "replace"
      ? `**replace** (${kind.order})`
      : kind.verb === "forget"
        ? "forget (removed from state, not destroyed)"
        : kind.verb === "other"
          ? `\`${code(c.change.actions.join(", "))}\``
          : kind.verb;
  let text = `- ${action} \`${code(c.address)}\``;
  if (c.deposed) text += ` (deposed object \`${code(c.deposed)}\`)`;
  const details: string[] = [];
  const shown = SHOWN[title];
  if (shown) {
    const detail = describeValue(c, kind.verb, shown.path);
    if (detail) details.push(`${shown.label} ${detail}`);
  }
  if (kind.verb === "replace" && c.change.replace_paths?.length) {
    const paths = c.change.replace_paths.slice(0, 5).map((p) => `\`${code(p.join("."))}\``);
    if (c.change.replace_paths.length > 5) paths.push(`${c.change.replace_paths.length - 5} more`);
    details.push(`forced by ${paths.join(", ")}`);
  }
  if (kind.verb === "update") details.push(...metadataDetail(c));
  const reason = c.action_reason ? REASONS[c.action_reason] : undefined;
  if (reason) details.push(reason);
  return details.length ? `${text}: ${details.join("; ")}` : text;
}

/** An instance update's metadata keys removed or rewritten (names only): the stack owns the whole map, so what gcloud compute ssh or a person added goes. */
function metadataDetail(c: ResourceChange): string[] {
  const [before, after] = [c.change.before, c.change.after].map((v) => (isObject(v) && isObject(v.metadata) ? v.metadata : undefined));
  // Terraform leaves a value known only after apply out of `after`: that key is not removed.
  const later = (k: string) => marked(c.change.after_unknown, ["metadata", k]);
  const names =
    before && after
      ? Object.keys(before)
          .filter((k) => after[k] !== before[k] && !later(k))
          .map((k) => `\`${code(k)}\` ${Object.hasOwn(after, k) ? "rewritten" : "removed"}`)
      : [];
  return names.length ? [`metadata ${names.join(", ")}: keys set outside the stack (gcloud compute ssh) are undone`] : [];
}

/** "`new`", "`new` (was `old`)" or "`old`" for a destroy; placeholders for sensitive and unknown values. */
function describeValue(c: ResourceChange, verb: Verb, path: readonly string[]): string | undefined {
  const { change } = c;
  const before = shownValue(change.before, change.before_sensitive, undefined, path);
  if (verb === "destroy" || verb === "forget") return before;
  const after = shownValue(change.after, change.after_sensitive, change.after_unknown, path);
  if (!after) return before === undefined ? undefined : `unset (was ${before})`;
  if (verb === "create" || before === undefined || before === after) return after;
  return `${after} (was ${before})`;
}

function shownValue(values: unknown, sensitive: unknown, unknown: unknown, path: readonly string[]): string | undefined {
  if (marked(sensitive, path)) return "(sensitive)";
  if (marked(unknown, path)) return "(known after apply)";
  let v: unknown = values;
  for (const key of path) v = isObject(v) ? v[key] : undefined;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return `\`${code(String(v))}\``;
  return undefined;
}

/** True when `path` or one of its prefixes is `true` in a mirror object (after_unknown, *_sensitive). */
function marked(mirror: unknown, path: readonly string[]): boolean {
  let m: unknown = mirror;
  if (m === true) return true;
  for (const key of path) {
    m = isObject(m) ? m[key] : undefined;
    if (m === true) return true;
  }
  return false;
}

/** Text safe inside a Markdown code span: no backticks, no line breaks, bounded length. */
function code(s: string, max = 200): string {
  const flat = s.replace(/`/g, "'").replace(/[\r\n\t]+/g, " ");
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function objectOrNone(value: unknown): Record<string, unknown> | undefined {
  return isObject(value) ? value : undefined;
}
