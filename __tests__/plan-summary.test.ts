/**
 * npm run plan-summary: the pull-request comment from `terraform show -json`.
 * fixtures/plans/*.json are hand-built in the documented plan shape (each says
 * so in `_fixture_note`: the Google and null providers cannot be downloaded
 * here). The last suite checks the real format with real Terraform and its
 * built-in terraform_data resource, which needs no provider download.
 */
import { describeWithTool } from "./helpers/tools.js";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import {
  parsePlan,
  parsePlanArgs,
  PLAN_SUMMARY_MARKER,
  PlanFileError,
  readPlanFile,
  renderPlanSummary,
  type ResourceChange,
  type TerraformPlan,
} from "../tools/plan-summary.js";
import { FIXTURES, REPO_ROOT } from "./helpers/nix.js";

const PLANS = join(FIXTURES, "plans");
const fixture = (name: string): TerraformPlan => parsePlan(readFileSync(join(PLANS, `${name}.json`), "utf8"), `${name}.json`);
const summary = (name: string, stack = "infra") => renderPlanSummary([{ stack, plan: fixture(name) }]);
const bullets = (md: string) => md.split("\n").filter((l) => l.startsWith("- "));

const OLD = "rgi5k0m0n8ykwavma21mjn378vhf57hd";
const NEW = "9w3vj0l2pd6q1x5ka8c7mzhy4bn0fsgr";
const FILE = "nixos-image-google-compute-25.11.20260107.d351d06-x86_64-linux.raw.tar.gz";
const FOOTER = "<sub>From `terraform show -json`; only names, store paths and image references are shown.</sub>";

describe("plan summary of the fixture plans", () => {
  test("every fixture says it is hand-built, and the summarizer ignores that key", () => {
    for (const name of ["image-change", "services-only", "no-changes", "vm-replaced"]) {
      const raw = JSON.parse(readFileSync(join(PLANS, `${name}.json`), "utf8"));
      expect(raw._fixture_note).toMatch(/^hand-built in the shape Terraform documents for terraform show -json/);
      expect(raw.format_version).toBe("1.2");
      const md = summary(name);
      expect(md.split("\n")[0]).toBe(PLAN_SUMMARY_MARKER);
      expect(md).not.toContain("_fixture_note");
      expect(md).not.toContain("hand-built");
      expect(md).not.toContain("data.");
    }
  });

  test("an image change: new image, upload and build replaced create-before-destroy, the GC roots step after them, exact Markdown", () => {
    expect(summary("image-change")).toBe(
      [
        PLAN_SUMMARY_MARKER,
        "## Terraform plan",
        "",
        "### Stack `infra`",
        "",
        "0 to add, 0 to change, 4 to replace, 0 to destroy",
        "",
        "**Images**",
        "",
        `- **replace** (create before destroy) \`google_compute_image.base-image_Image_3D1BBCE9\`: image \`nixos-base-${NEW}\` (was \`nixos-base-${OLD}\`); forced by \`name\`, \`raw_disk.0.source\``,
        "",
        "**Image uploads**",
        "",
        `- **replace** (create before destroy) \`null_resource.base-image_Upload_C286219A\`: object \`gs://my-data-project-nixos-images/nixos/${NEW}/${FILE}\` (was \`gs://my-data-project-nixos-images/nixos/${OLD}/${FILE}\`); forced by \`triggers\``,
        "",
        "**Image builds**",
        "",
        `- **replace** (create before destroy) \`null_resource.base-build_Build_22371588\`: store path \`/nix/store/${NEW}-google-compute-image\` (was \`/nix/store/${OLD}-google-compute-image\`); forced by \`triggers\``,
        "",
        "**GC roots**",
        "",
        `- **replace** (destroy before create) \`null_resource.GcRoots_Prune_2D3D9A8C\`: keeps \`${NEW}\` (was \`${OLD}\`); forced by \`triggers\``,
        "",
        FOOTER,
        "",
      ].join("\n"),
    );
  });

  test("a services-only change: one deploy step replaced with the new system, nothing else listed", () => {
    const md = summary("services-only");
    expect(md).toContain("\n0 to add, 0 to change, 1 to replace, 0 to destroy\n");
    expect(md).toContain("\n**Deploy steps**\n");
    expect(md).not.toMatch(/\*\*(Images|Image uploads|Image builds|GC roots|Instances|OCI pushes)\*\*/);
    expect(bullets(md)).toEqual([
      "- **replace** (destroy before create) `null_resource.vm-deploy_Deploy_16F45DCC`: system " +
        "`/nix/store/q2c8mzl0w6h1yfa9dnsk4vbrg3p5xj7i-nixos-system-vm-25.11` (was `/nix/store/bc6szw319vfzjdyb8gzfhk1xiy3kw3yh-nixos-system-vm-25.11`); forced by `triggers`",
    ]);
  });

  test("no changes: the stack says so and lists nothing", () => {
    const md = summary("no-changes", "bootstrap");
    expect(md).toContain("### Stack `bootstrap`\n\nNo changes.\n");
    expect(bullets(md)).toEqual([]);
    expect(md).not.toMatch(/to add/);
  });

  test("a VM replaced destroy-before-create; its deploy step follows; after is never printed wholesale", () => {
    const md = summary("vm-replaced");
    expect(md).toContain("\n0 to add, 0 to change, 2 to replace, 0 to destroy\n");
    expect(md.indexOf("**Instances**")).toBeLessThan(md.indexOf("**Deploy steps**"));
    expect(bullets(md)).toEqual([
      "- **replace** (destroy before create) `google_compute_instance.vm-vm_Instance_C70BC375`: instance `vm`; forced by `boot_disk.0.initialize_params.0.image`",
      "- **replace** (destroy before create) `null_resource.vm-deploy_Deploy_16F45DCC`: system `/nix/store/bc6szw319vfzjdyb8gzfhk1xiy3kw3yh-nixos-system-vm-25.11`; forced by `triggers`",
    ]);
    for (const hidden of ["after-is-never-printed-wholesale", "ssh-ed25519", "e2-standard-2", "instance_id"]) expect(md).not.toContain(hidden);
  });
});

/** A resource change in the documented shape, for cases the fixtures do not cover. */
function change(address: string, actions: string[], before: unknown, after: unknown, extra: Partial<ResourceChange["change"]> & { deposed?: string; action_reason?: string; mode?: string } = {}): ResourceChange {
  const { deposed, action_reason, mode, ...rest } = extra;
  const [type, name] = address.replace(/^data\./, "").split(".");
  return {
    address,
    mode: mode ?? (address.startsWith("data.") ? "data" : "managed"),
    type,
    name,
    ...(deposed ? { deposed } : {}),
    ...(action_reason ? { action_reason } : {}),
    change: { actions, before, after, after_unknown: {}, before_sensitive: before === null ? false : {}, after_sensitive: after === null ? false : {}, ...rest },
  };
}
const planOf = (...resource_changes: ResourceChange[]): TerraformPlan => ({ format_version: "1.2", resource_changes });

describe("plan summary of every action and kind", () => {
  const mixed = planOf(
    change("google_storage_bucket.ImageBucket_EBEB496F", ["update"], { name: "b" }, { name: "b" }),
    change("google_compute_instance.web-vm_Instance_0000AAAA", ["create"], null, { name: "web" }, { after_unknown: { id: true } }),
    change("null_resource.web-deploy_Deploy_0000BBBB", ["create"], null, { triggers: { toplevel: "/nix/store/aaaa-nixos-system-web" } }, { after_unknown: { id: true, triggers: { instance_id: true } } }),
    change("null_resource.ingest-oci_Push_0000CCCC", ["delete", "create"], { triggers: { reference: "r/ingest:0.1.0-old" } }, { triggers: { reference: "r/ingest:0.1.1-new" } }, { replace_paths: [["triggers"]] }),
    change("google_compute_firewall.old-vm_SshFirewall_0000DDDD", ["delete"], { name: "old-ssh" }, null, { action_reason: "delete_because_no_resource_config" }),
    change("google_compute_instance.vm-vm_Instance_C70BC375", ["no-op"], { name: "vm" }, { name: "vm" }),
    change("data.google_artifact_registry_docker_image.ingest-oci_Pushed_1", ["read"], null, { image_name: "ingest" }),
  );

  test("totals, group order, one bullet per changed resource", () => {
    const md = renderPlanSummary([{ stack: "infra", plan: mixed }]);
    expect(md).toContain("\n2 to add, 1 to change, 1 to replace, 1 to destroy\n");
    const titles = md.split("\n").filter((l) => /^\*\*[^*]+\*\*$/.test(l));
    expect(titles).toEqual(["**Instances**", "**Deploy steps**", "**OCI pushes**", "**Firewalls**", "**Buckets**"]);
    expect(bullets(md)).toEqual([
      "- create `google_compute_instance.web-vm_Instance_0000AAAA`: instance `web`",
      "- create `null_resource.web-deploy_Deploy_0000BBBB`: system `/nix/store/aaaa-nixos-system-web`",
      "- **replace** (destroy before create) `null_resource.ingest-oci_Push_0000CCCC`: reference `r/ingest:0.1.1-new` (was `r/ingest:0.1.0-old`); forced by `triggers`",
      "- destroy `google_compute_firewall.old-vm_SshFirewall_0000DDDD`: no longer in the configuration",
      "- update `google_storage_bucket.ImageBucket_EBEB496F`",
    ]);
  });

  test("an instance update that removes or rewrites metadata keys says so (an operator's gcloud compute ssh key goes), naming keys only", () => {
    const before = { name: "vm", metadata: { "ssh-keys": "deploy:ssh-ed25519 AAAA\noperator:ssh-ed25519 BBBB", "enable-oslogin": "FALSE", "operator-note": "x" } };
    const after = { name: "vm", metadata: { "ssh-keys": "deploy:ssh-ed25519 AAAA", "enable-oslogin": "FALSE" } };
    const md = renderPlanSummary([{ stack: "infra", plan: planOf(change("google_compute_instance.vm-vm_Instance_1", ["update"], before, after)) }]);
    expect(bullets(md)).toEqual([
      "- update `google_compute_instance.vm-vm_Instance_1`: instance `vm`; metadata `ssh-keys` rewritten, `operator-note` removed: keys set outside the stack (gcloud compute ssh) are undone",
    ]);
    expect(md).not.toContain("BBBB");
    // A value known only after apply is left out of `after`: not a removal.
    const pending = planOf(change("google_compute_instance.vm-vm_Instance_1", ["update"], { name: "vm", metadata: { startup: "old" } }, { name: "vm", metadata: {} }));
    (pending as any).resource_changes[0].change.after_unknown = { metadata: { startup: true } };
    expect(bullets(renderPlanSummary([{ stack: "infra", plan: pending }]))).toEqual(["- update `google_compute_instance.vm-vm_Instance_1`: instance `vm`"]);
  });

  test("an upload step shows its object", () => {
    const upload = planOf(change("null_resource.base-image_Upload_1", ["create"], null, { triggers: { object: "gs://b/nixos/h/f.raw.tar.gz", image: "nixos-base-x" } }));
    expect(bullets(renderPlanSummary([{ stack: "infra", plan: upload }]))).toEqual([
      "- create `null_resource.base-image_Upload_1`: object `gs://b/nixos/h/f.raw.tar.gz`",
    ]);
  });

  test("every kind lands in its group, in the documented order", () => {
    const kinds = planOf(
      ...[
        "google_storage_bucket.ImageBucket_1",
        "google_service_account.vm-vm_ServiceAccount_1",
        "google_project_iam_member.vm-vm_logging-logWriter_1",
        "google_compute_firewall.vm-vm_SshFirewall_1",
        "google_secret_manager_secret.secret-token_Secret_1",
        "google_artifact_registry_repository.Registry_Repository_1",
        "null_resource.ingest-oci_Push_1",
        "null_resource.vm-deploy_Deploy_1",
        "google_compute_instance.vm-vm_Instance_1",
        "null_resource.base-build_Build_1",
        "google_storage_bucket_object.base-image_Object_1",
        "null_resource.base-image_Upload_1",
        "google_compute_image.base-image_Image_1",
        "google_project_service.compute",
      ].map((a) => change(a, ["create"], null, {})),
    );
    const titles = renderPlanSummary([{ stack: "s", plan: kinds }])
      .split("\n")
      .filter((l) => /^\*\*[^*]+\*\*$/.test(l));
    expect(titles).toEqual([
      "**Images**",
      "**Image uploads**",
      "**Image objects**",
      "**Image builds**",
      "**Instances**",
      "**Deploy steps**",
      "**OCI pushes**",
      "**OCI registry**",
      "**Firewalls**",
      "**Secrets**",
      "**Service accounts & IAM**",
      "**Buckets**",
      "**Other**",
    ]);
  });

  test("a create under a name another resource holds (a renamed image id) is called out: Google would refuse it", () => {
    const name = `nixos-base-${NEW}`;
    const renamed = planOf(
      change("google_compute_image.base-image_Image_0000AAAA", ["delete"], { name }, null, { action_reason: "delete_because_no_resource_config" }),
      change("google_compute_image.main-image_Image_0000BBBB", ["create"], null, { name }),
      // A replacement under a new name, as every image change is, is fine.
      change("google_compute_image.edge-image_Image_0000CCCC", ["create", "delete"], { name: `nixos-edge-${OLD}` }, { name: `nixos-edge-${NEW}` }),
    );
    const warnings = renderPlanSummary([{ stack: "infra", plan: renamed }])
      .split("\n")
      .filter((l) => l.startsWith("> **Warning:**"));
    expect(warnings).toEqual([
      `> **Warning:** google_compute_image.main-image_Image_0000BBBB is created under the name "${name}", which google_compute_image.base-image_Image_0000AAAA holds until it is deleted in this same apply, in no set order: Google would refuse it (409); move the state instead (terraform state mv google_compute_image.base-image_Image_0000AAAA google_compute_image.main-image_Image_0000BBBB)`,
    ]);
    expect(summary("image-change")).not.toContain("Warning");
  });

  test("a VM with deletion protection removed or replaced is called out: the provider refuses the delete", () => {
    const plan = planOf(
      change("google_compute_instance.db-vm_Instance_0000AAAA", ["delete", "create"], { name: "db", deletion_protection: true }, { name: "db", deletion_protection: false }),
      change("google_compute_instance.old-vm_Instance_0000BBBB", ["delete"], { name: "old", deletion_protection: true }, null),
      // Unprotected, or protected and updated in place: nothing to say.
      change("google_compute_instance.vm-vm_Instance_0000CCCC", ["delete"], { name: "vm", deletion_protection: false }, null),
      change("google_compute_instance.pg-vm_Instance_0000DDDD", ["update"], { name: "pg", deletion_protection: true }, { name: "pg", deletion_protection: false }),
    );
    const warnings = renderPlanSummary([{ stack: "infra", plan }])
      .split("\n")
      .filter((l) => l.startsWith("> **Warning:**"));
    const fix = "the google provider refuses; set the host's deletionProtection to false and apply that alone first";
    expect(warnings).toEqual([
      `> **Warning:** google_compute_instance.db-vm_Instance_0000AAAA would be deleted (replaced), but its deletion protection is on: ${fix}`,
      `> **Warning:** google_compute_instance.old-vm_Instance_0000BBBB would be deleted (removed), but its deletion protection is on: ${fix}`,
    ]);
  });

  test("a secret removed or replaced is called out: its versions, the values, go with it", () => {
    const plan = planOf(
      change("google_secret_manager_secret.secret-token_Secret_0000AAAA", ["delete"], { secret_id: "token" }, null),
      change("google_secret_manager_secret.secret-key_Secret_0000BBBB", ["delete", "create"], { secret_id: "key" }, { secret_id: "key" }),
      change("google_secret_manager_secret.secret-new_Secret_0000CCCC", ["create"], null, { secret_id: "new" }),
    );
    const warnings = renderPlanSummary([{ stack: "infra", plan }])
      .split("\n")
      .filter((l) => l.startsWith("> **Warning:**"));
    expect(warnings).toEqual([
      "> **Warning:** google_secret_manager_secret.secret-token_Secret_0000AAAA would be deleted with all its versions: its values are gone for good",
      "> **Warning:** google_secret_manager_secret.secret-key_Secret_0000BBBB would be replaced, its versions deleted: add the value again after the apply (gcloud secrets versions add key --data-file=FILE)",
    ]);
  });

  test("sensitive and unknown values are placeholders; values cannot break out of code spans", () => {
    const md = renderPlanSummary([
      {
        stack: "infra",
        plan: planOf(
          change("google_compute_image.a-image_Image_1", ["create"], null, { name: "s3cr3t-name" }, { after_sensitive: { name: true } }),
          change("google_compute_image.b-image_Image_1", ["create"], null, {}, { after_unknown: { name: true } }),
          change("null_resource.c-deploy_Deploy_1", ["update"], { triggers: { toplevel: "x" } }, { triggers: { toplevel: "hunter2" } }, { before_sensitive: true, after_sensitive: { triggers: true } }),
          change("google_compute_image.d-image_Image_1", ["create"], null, { name: "evil`\n## injected" }),
        ),
      },
    ]);
    expect(md).not.toContain("s3cr3t");
    expect(md).not.toContain("hunter2");
    expect(bullets(md)).toEqual([
      "- create `google_compute_image.a-image_Image_1`: image (sensitive)",
      "- create `google_compute_image.b-image_Image_1`: image (known after apply)",
      "- create `google_compute_image.d-image_Image_1`: image `evil' ## injected`",
      "- update `null_resource.c-deploy_Deploy_1`: system (sensitive)",
    ]);
  });

  test("deposed objects, forget and unknown action lists are shown, not dropped", () => {
    const md = renderPlanSummary([
      {
        stack: "infra",
        plan: planOf(
          change("google_compute_image.base-image_Image_1", ["delete"], { name: "nixos-base-old" }, null, { deposed: "00aa11bb" }),
          change("google_compute_firewall.x_1", ["forget"], { name: "x" }, null),
          change("google_compute_firewall.y_1", ["create", "forget"], null, { name: "y" }),
        ),
      },
    ]);
    expect(md).toContain("\n0 to add, 0 to change, 0 to replace, 1 to destroy, 1 to forget, 1 with other actions\n");
    expect(bullets(md)).toEqual([
      "- destroy `google_compute_image.base-image_Image_1` (deposed object `00aa11bb`): image `nixos-base-old`",
      "- forget (removed from state, not destroyed) `google_compute_firewall.x_1`",
      "- `create, forget` `google_compute_firewall.y_1`",
    ]);
  });

  test("stacks appear in the order given, each with its own total", () => {
    const md = renderPlanSummary([
      { stack: "bootstrap", plan: fixture("no-changes") },
      { stack: "infra", plan: fixture("services-only") },
    ]);
    expect(md.indexOf("### Stack `bootstrap`")).toBeLessThan(md.indexOf("### Stack `infra`"));
    expect(md.match(new RegExp(PLAN_SUMMARY_MARKER, "g"))).toHaveLength(1);
    expect(md.match(/No changes\./g)).toHaveLength(1);
    expect(md.match(/to replace/g)).toHaveLength(1);
  });

  test("an errored plan carries a warning", () => {
    const md = renderPlanSummary([{ stack: "infra", plan: { ...planOf(), errored: true } }]);
    expect(md).toContain("> **Warning:** Terraform reported errors while planning");
  });

  test("a plan that says it is incomplete carries a note; one that does not say (before Terraform 1.8) does not", () => {
    const change = '{"address": "google_compute_image.a", "type": "google_compute_image", "change": {"actions": ["create"], "after": {"name": "a"}}}';
    const parsed = (extra: string) => parsePlan(`{"format_version": "1.2", "resource_changes": [${change}]${extra}}`, "p.json");
    const note = "> **Note:** the plan is not complete";
    expect(renderPlanSummary([{ stack: "infra", plan: parsed(', "complete": false') }])).toContain(note);
    expect(renderPlanSummary([{ stack: "infra", plan: parsed("") }])).not.toContain(note);
    expect(renderPlanSummary([{ stack: "infra", plan: parsed(', "complete": true') }])).not.toContain(note);
  });

  test("a replacement names at most five of the paths that forced it", () => {
    const replace_paths = ["a", "b", "c", "d", "e", "f", "g"].map((p) => [p]);
    const md = renderPlanSummary([{ stack: "infra", plan: planOf(change("google_compute_firewall.x_1", ["delete", "create"], { name: "x" }, { name: "x" }, { replace_paths })) }]);
    expect(bullets(md)).toEqual(["- **replace** (destroy before create) `google_compute_firewall.x_1`: forced by `a`, `b`, `c`, `d`, `e`, 2 more"]);
  });

  test("long values are cut to 200 characters, so one resource cannot flood the comment", () => {
    const name = `nixos-${"x".repeat(400)}`;
    const md = renderPlanSummary([{ stack: "infra", plan: planOf(change("google_compute_image.a-image_Image_1", ["create"], null, { name })) }]);
    const shown = /image `([^`]*)`$/.exec(bullets(md)[0])![1];
    expect(shown).toBe(`${name.slice(0, 199)}…`);
    expect(md).not.toContain(name.slice(0, 201));
  });
});

describe("plan input checks", () => {
  const bad = (text: string) => () => parsePlan(text, "x.plan.json");

  test("invalid JSON, non-plans and unsupported versions are errors naming the file", () => {
    expect(bad("{ nope")).toThrow(/^x\.plan\.json: not valid JSON \(/);
    expect(bad("[]")).toThrow("x.plan.json: not a Terraform plan (expected the output of `terraform show -json <planfile>`)");
    expect(bad('{"resource_changes": []}')).toThrow("x.plan.json: not a Terraform plan: no format_version");
    // The JSON of a state (terraform show -json without a plan file) has `values`, not resource changes.
    expect(bad('{"format_version": "1.0", "values": {"root_module": {}}}')).toThrow("x.plan.json: not a Terraform plan: no resource_changes array");
    expect(bad('{"format_version": "2.0", "resource_changes": []}')).toThrow('x.plan.json: plan format_version "2.0" is not supported (this reads 1.x)');
    expect(bad('{"format_version": "1.2", "resource_changes": [{"address": "a.b"}]}')).toThrow("x.plan.json: resource_changes[0] lacks address, type or change.actions");
    expect(bad("{ nope")).toThrow(PlanFileError);
  });

  test("Terraform omits resource_changes when a configuration has no resources: still a plan, no changes", () => {
    const plan = parsePlan('{"format_version": "1.2", "planned_values": {"root_module": {}}, "applyable": false}', "empty.json");
    expect(renderPlanSummary([{ stack: "s", plan }])).toContain("No changes.");
  });

  test("arguments are <stack>=<file>, each stack once, stdin at most once", () => {
    expect(parsePlanArgs(["bootstrap=b.json", "infra=-"])).toEqual([
      { stack: "bootstrap", file: "b.json" },
      { stack: "infra", file: "-" },
    ]);
    expect(() => parsePlanArgs([])).toThrow(/^usage: npm run plan-summary/);
    expect(() => parsePlanArgs(["infra.json"])).toThrow('"infra.json" is not <stack>=<plan.json>');
    expect(() => parsePlanArgs(["in`fra=a.json"])).toThrow("is not a stack name");
    expect(() => parsePlanArgs(["infra="])).toThrow("no plan file given for stack infra");
    expect(() => parsePlanArgs(["a=x", "a=y"])).toThrow("stack a is given twice");
    expect(() => parsePlanArgs(["a=-", "b=-"])).toThrow("only one stack can read its plan from stdin (-)");
  });
});

describe("npm run plan-summary", () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "plan-summary-"));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const cli = (args: string[], input?: string) =>
    execa("node", ["--import", "tsx", "bin/plan-summary.ts", ...args], { cwd: REPO_ROOT, reject: false, ...(input === undefined ? { stdin: "ignore" as const } : { input }) });

  test("prints the comment for several stacks, one of them from stdin", async () => {
    const run = await cli([`bootstrap=${join(PLANS, "no-changes.json")}`, "infra=-"], readFileSync(join(PLANS, "image-change.json"), "utf8"));
    expect(run.stderr).toBe("");
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(
      renderPlanSummary([
        { stack: "bootstrap", plan: fixture("no-changes") },
        { stack: "infra", plan: fixture("image-change") },
      ]).trimEnd(),
    );
  });

  test("a missing file, invalid JSON and a non-plan are named", () => {
    const invalid = join(work, "invalid.json");
    writeFileSync(invalid, "{ not json");
    const state = join(work, "state.json");
    writeFileSync(state, JSON.stringify({ format_version: "1.0", terraform_version: "1.11.4", values: { root_module: {} } }));
    const cases: [string, RegExp][] = [
      [join(work, "missing.json"), new RegExp(`^${join(work, "missing.json")}: no such file$`)],
      [invalid, new RegExp(`^${invalid}: not valid JSON \\(.+\\)$`)],
      [state, new RegExp(`^${state}: not a Terraform plan: no resource_changes array \\(expected the output of \`terraform show -json <planfile>\`\\)$`)],
      [work, new RegExp(`^${work}: is a directory, not a plan JSON file$`)],
    ];
    for (const [file, message] of cases) expect(() => readPlanFile(file)).toThrow(message);
  });

  test("a file it cannot read exits 1 with one line, without a stack trace", async () => {
    const run = await cli([`bootstrap=${join(PLANS, "no-changes.json")}`, `infra=${join(work, "missing.json")}`]);
    expect(run.stderr).toBe(`error: ${join(work, "missing.json")}: no such file`);
    expect(run.stdout).toBe("");
    expect(run.exitCode).toBe(1);
  });

  test("invalid JSON on stdin is named <stdin>", async () => {
    const run = await cli(["infra=-"], "nope");
    expect(run.stderr).toMatch(/^error: <stdin>: not valid JSON/);
    expect(run.exitCode).toBe(1);
  });
});

describeWithTool("terraform", "plan summary of real `terraform show -json` output", () => {
  let work: string;
  const env = { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" };
  const tf = (...args: string[]) => execFileSync("terraform", [`-chdir=${work}`, ...args], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "plan-summary-tf-"));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("replacements in both orders, a count delete and a sensitive input, as Terraform writes them", () => {
    writeFileSync(
      join(work, "main.tf"),
      `variable "v" {
  default = "one"
}
variable "secret" {
  default   = "do-not-print-me"
  sensitive = true
}
resource "terraform_data" "cbd" {
  triggers_replace = var.v
  lifecycle {
    create_before_destroy = true
  }
}
resource "terraform_data" "dbc" {
  triggers_replace = var.v
}
resource "terraform_data" "same" {
  input = "x"
}
resource "terraform_data" "gone" {
  count = var.v == "one" ? 1 : 0
}
resource "terraform_data" "secret" {
  input = { name = var.v, secret = var.secret }
}
`,
    );
    tf("init", "-input=false");
    tf("apply", "-input=false", "-auto-approve");
    tf("plan", "-input=false", "-lock=false", "-var", "v=two", "-out=plan.tfplan");
    const json = tf("show", "-json", "plan.tfplan");
    expect(json).toContain("do-not-print-me"); // terraform show -json prints sensitive values in clear …
    const plan = parsePlan(json, "real.json");
    expect(plan.format_version).toMatch(/^1\./);
    const md = renderPlanSummary([{ stack: "real", plan }]);
    expect(md).not.toContain("do-not-print-me"); // … the summary does not
    expect(md).toContain("\n0 to add, 1 to change, 2 to replace, 1 to destroy\n");
    expect(bullets(md)).toEqual([
      "- **replace** (create before destroy) `terraform_data.cbd`: forced by `triggers_replace`",
      "- **replace** (destroy before create) `terraform_data.dbc`: forced by `triggers_replace`",
      "- destroy `terraform_data.gone[0]`: count index out of range",
      "- update `terraform_data.secret`",
    ]);
  });

  test("a configuration without resources: Terraform omits resource_changes, the summary says No changes.", () => {
    writeFileSync(join(work, "main.tf"), "");
    rmSync(join(work, "terraform.tfstate"), { force: true });
    rmSync(join(work, "terraform.tfstate.backup"), { force: true });
    tf("plan", "-input=false", "-lock=false", "-out=empty.tfplan");
    const json = tf("show", "-json", "empty.tfplan");
    expect(JSON.parse(json)).not.toHaveProperty("resource_changes");
    expect(renderPlanSummary([{ stack: "empty", plan: parsePlan(json, "empty.json") }])).toContain("### Stack `empty`\n\nNo changes.\n");
  });
});
