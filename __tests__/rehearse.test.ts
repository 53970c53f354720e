/** tools/rehearse.ts: the rewrite of the infra stack for offline Terraform core, as a pure function and through real Terraform. */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nameConflicts, type SavedPlan, summarizeApply, type TerraformEvent } from "../tools/apply-summary.js";
import { FORCE_NEW, forceNewValues, rehearsalConfig, rewriteTemplate, type StandIn } from "../tools/rehearse.js";
import type { SettingsInput } from "../lib/settings.js";
import { applyReviewed, terraform, terraformBinary } from "../tools/terraform.js";
import { describeWithTool } from "./helpers/tools.js";
import { App, Testing } from "cdktf";
import { BootstrapStack } from "../constructs/bootstrap-stack.js";
import { baseSettings, REAL_KEY as KEY } from "./helpers/settings.js";
import { staticResolved, synthStack } from "./helpers/stack.js";
import { parseSettings } from "../lib/settings.js";

const host = (extra: Record<string, unknown> = {}) => ({ nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: [KEY], ...extra });
/** Every kind of resource the stack makes: OCI images, a public image, a direct-SSH host and a recreated one. */
const everything = (overrides: Partial<SettingsInput> = {}): SettingsInput =>
  baseSettings({
    images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", public: true } },
    hosts: {
      vm: host({ runsOciImages: ["ingest"] }),
      edge: host({ nixosConfiguration: "worker", sshSourceRanges: ["203.0.113.0/24"] }),
      pet: host({ recreateOnImageChange: true }),
    },
    ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" } },
    ...overrides,
  });
function synthesized(input: SettingsInput) {
  const s = parseSettings(input, "test");
  return JSON.parse(synthStack(s, staticResolved(s)).json);
}
const standIn = (config: any, prefix: string) => {
  const hits = Object.entries<any>(config.resource.terraform_data).filter(([name]) => name.startsWith(prefix));
  if (hits.length !== 1) throw new Error(`expected one stand-in starting with ${prefix}, found ${hits.map(([n]) => n).join(", ") || "none"}`);
  return { name: hits[0][0], block: hits[0][1] };
};

describe("the rehearsal rewrite (pure)", () => {
  const stack = synthesized(everything());
  const { config, standIns } = rehearsalConfig(stack);

  test("only terraform_data is left: no providers, no required_providers, local state in the rehearsal directory", () => {
    expect(Object.keys(config.resource)).toEqual(["terraform_data"]);
    expect(config.provider).toBeUndefined();
    expect(config.data).toBeUndefined();
    expect(config.terraform).toEqual({ backend: { local: { path: "terraform.tfstate" } } });
    // Every original resource and data source has exactly one stand-in.
    const originals = [
      ...Object.entries<any>(stack.resource).flatMap(([type, byName]) => Object.keys(byName).map((n) => `${type}.${n}`)),
      ...Object.entries<any>(stack.data).flatMap(([type, byName]) => Object.keys(byName).map((n) => `data.${type}.${n}`)),
    ];
    expect(Object.values(standIns).map((s) => s.original).sort()).toEqual(originals.sort());
  });

  test("stand-ins keep the type and logical id in their name, and say what they stand in for", () => {
    const vm = standIn(config, "google_compute_instance__vm-vm_Instance_");
    expect(vm.block["//"].rehearsal.stands_in_for).toMatch(/^google_compute_instance\.vm-vm_Instance_\w+$/);
    expect(standIns[`terraform_data.${vm.name}`]).toMatchObject({ kind: "instance" });
    expect(standIns[`terraform_data.${standIn(config, "null_resource__base-build_Build_").name}`].kind).toBe("build");
    expect(standIns[`terraform_data.${standIn(config, "null_resource__vm-deploy_Deploy_").name}`].kind).toBe("deploy");
    expect(standIns[`terraform_data.${standIn(config, "null_resource__ingest-oci_Push_").name}`].kind).toBe("push");
    expect(standIn(config, "data_google_artifact_registry_docker_image__ingest-oci_Pushed_").block["//"].rehearsal.stands_in_for).toMatch(/^data\.google_artifact_registry_docker_image\./);
  });

  test("an image is replaced on what Google cannot update; its labels are updated in place", () => {
    const image = standIn(config, "google_compute_image__base-image_Image_").block;
    expect(Object.keys(image.triggers_replace).sort()).toEqual(["description", "family", "guest_os_features", "name", "raw_disk", "storage_locations"]);
    expect(image.input.labels["nix-store-hash"]).toMatch(/^[0-9a-z]{32}$/);
    expect(image.lifecycle).toEqual({ create_before_destroy: true });
    expect(image.depends_on).toEqual([expect.stringMatching(/^terraform_data\.null_resource__base-image_Upload_\w+$/)]);
  });

  test("an instance: ignore_changes drops the boot image from input and triggers but keeps the dependency; machine_type is no trigger", () => {
    const vm = standIn(config, "google_compute_instance__vm-vm_Instance_").block;
    expect(vm.input.boot_disk.initialize_params).toEqual({ size: 20, type: "pd-balanced" });
    expect(vm.input.machine_type).toBe("e2-small");
    expect(vm.triggers_replace).toEqual({
      name: "vm",
      zone: "europe-west1-b",
      "boot_disk.initialize_params.size": 20,
      "boot_disk.initialize_params.type": "pd-balanced",
      "boot_disk.#": 1,
      "network_interface.#": 1,
    });
    expect(vm.depends_on).toEqual([expect.stringMatching(/^terraform_data\.google_compute_image__base-image_Image_\w+$/)]);
    expect(vm.lifecycle).toBeUndefined();
    // recreateOnImageChange: the image is a trigger, and the new VM comes first.
    const pet = standIn(config, "google_compute_instance__pet-vm_Instance_").block;
    expect(pet.triggers_replace["boot_disk.initialize_params.image"]).toMatch(/^\$\{\(join\("", \[substr\(terraform_data\.google_compute_image__base-image_Image_\w+\.id, 0, 0\), "https:\/\/www\.googleapis\.com\/compute\/v1\/projects\/", "test-project", "\/global\/images\/", terraform_data\.google_compute_image__base-image_Image_\w+\.input\.name\]\)\)\}$/);
    expect(pet.lifecycle).toEqual({ create_before_destroy: true });
  });

  test("every attribute the stack sets on a Google resource is classified: ForceNew (FORCE_NEW) or updated in place", () => {
    // What provider 6.50.0 updates in place, read from the same schemas as FORCE_NEW. A construct that sets
    // an attribute found in neither list fails here: read its schema and add it to one of them.
    const IN_PLACE: Record<string, string[]> = {
      google_compute_image: ["labels"],
      google_compute_instance: [
        "machine_type", "allow_stopping_for_update", "deletion_protection", "tags", "labels", "metadata",
        "network_interface.network", "network_interface.subnetwork", "network_interface.access_config", "service_account.email", "service_account.scopes",
      ],
      google_compute_firewall: ["network", "allow.protocol", "allow.ports", "source_ranges", "target_service_accounts", "description"],
      google_service_account: ["display_name"],
      google_storage_bucket: ["uniform_bucket_level_access", "public_access_prevention", "labels", "force_destroy", "lifecycle_rule"],
      google_artifact_registry_repository: ["description", "docker_config.immutable_tags", "cleanup_policy_dry_run", "cleanup_policies", "labels"],
    };
    const paths = (value: any, prefix: string[]): string[] => {
      if (Array.isArray(value) && value.some((v) => v !== null && typeof v === "object")) return value.flatMap((v) => paths(v, prefix));
      if (value === null || typeof value !== "object" || Array.isArray(value) || Object.keys(value).length === 0) return [prefix.join(".")];
      return Object.entries(value).flatMap(([k, v]) => paths(v, [...prefix, k]));
    };
    const unclassified: string[] = [];
    const variants = [
      stack,
      synthesized(everything({ createImageBucket: true, hosts: { vm: host({ subnetwork: "default", tags: ["db"], deletionProtection: true }) } })),
      synthesized(everything({ secretLocations: ["europe-west1"], hosts: { vm: host({ secrets: { token: {} } }) }, ociImages: {} })),
    ];
    for (const synthesizedStack of variants) {
      for (const [type, byName] of Object.entries<Record<string, any>>(synthesizedStack.resource)) {
        if (!type.startsWith("google_")) continue;
        const known = [...FORCE_NEW[type].map((p) => p.replace(/\.#$/, "")), ...(IN_PLACE[type] ?? [])];
        for (const block of Object.values(byName)) {
          const attributes = Object.fromEntries(Object.entries(block).filter(([k]) => !["//", "depends_on", "lifecycle", "provider"].includes(k)));
          for (const path of new Set(paths(attributes, []))) {
            if (!known.some((k) => path === k || path.startsWith(`${k}.`))) unclassified.push(`${type} ${path}`);
          }
        }
      }
    }
    expect([...new Set(unclassified)]).toEqual([]);
  });

  test("references resolve: ids from the stand-in, configured values from its input, computed values derived", () => {
    const deploy = standIn(config, "null_resource__vm-deploy_Deploy_").block;
    const instanceId = /^\$\{terraform_data\.google_compute_instance__vm-vm_Instance_\w+\.id\}$/;
    expect(deploy.triggers_replace.instance_id).toMatch(instanceId);
    expect(deploy.provisioner[0]["local-exec"].environment.DEPLOY_INSTANCE_ID).toMatch(instanceId);
    expect(deploy.depends_on).toEqual([
      expect.stringMatching(/^terraform_data\.google_compute_instance__vm-vm_Instance_/),
      expect.stringMatching(/^terraform_data\.google_compute_firewall__vm-vm_SshFirewall_/),
    ]);
    // A service account's email is known at plan in the provider (CustomizeDiff), so it is not tied to the id.
    const firewall = standIn(config, "google_compute_firewall__vm-vm_SshFirewall_").block;
    expect(firewall.input.target_service_accounts).toEqual([
      expect.stringMatching(/^\$\{\(join\("", \[terraform_data\.google_service_account__vm-vm_ServiceAccount_\w+\.input\.account_id, "@", "test-project", "\.iam\.gserviceaccount\.com"\]\)\)\}$/),
    ]);
    // Direct SSH reads the external IP Google assigns at create.
    const edge = standIn(config, "null_resource__edge-deploy_Deploy_").block;
    expect(edge.provisioner[0]["local-exec"].environment.DEPLOY_HOST).toMatch(/^\$\{\(join\("", \[substr\(terraform_data\.google_compute_instance__edge-vm_Instance_\w+\.id, 0, 0\), "127\.0\.0\.1"\]\)\)\}$/);
    expect(config.output["image-base-name"].value).toMatch(/^\$\{terraform_data\.google_compute_image__base-image_Image_\w+\.input\.name\}$/);
    expect(config.output["oci-ingest-digest-reference"].value).toContain("sha256(terraform_data.data_google_artifact_registry_docker_image__ingest-oci_Pushed_");
    // The digest is read after the push, as the data source's depends_on says.
    const pushed = standIn(config, "data_google_artifact_registry_docker_image__ingest-oci_Pushed_").block;
    expect(pushed.depends_on).toEqual([`terraform_data.${standIn(config, "null_resource__ingest-oci_Push_").name}`]);
  });

  test("a reference into a block: indices on single blocks (objects in cdk.tf.json) go, indices into lists stay", () => {
    const { config: c } = rehearsalConfig({
      resource: {
        google_compute_instance: { i: { name: "i", zone: "z", boot_disk: { initialize_params: { size: 20 } }, network_interface: [{ network: "n" }, { network: "m" }] } },
        null_resource: { r: { triggers: { size: "${google_compute_instance.i.boot_disk[0].initialize_params[0].size}", net: "${google_compute_instance.i.network_interface[1].network}" } } },
      },
    });
    expect(c.resource.terraform_data.null_resource__r.triggers_replace).toEqual({
      size: "${terraform_data.google_compute_instance__i.input.boot_disk.initialize_params.size}",
      net: "${terraform_data.google_compute_instance__i.input.network_interface[1].network}",
    });
  });

  test("null_resource: triggers become triggers_replace; provisioners stay exactly as synthesized, a destroy step's self.triggers read as self.triggers_replace", () => {
    const original = Object.entries<any>(stack.resource.null_resource).find(([n]) => n.startsWith("base-build_Build_"))![1];
    const build = standIn(config, "null_resource__base-build_Build_").block;
    expect(build.triggers_replace).toEqual(original.triggers);
    expect(original.provisioner[1]["local-exec"].environment).toEqual({ GC_ROOT: "${self.triggers.gc_root}" });
    const asRehearsed = structuredClone(original.provisioner);
    asRehearsed[1]["local-exec"].environment.GC_ROOT = "${self.triggers_replace.gc_root}";
    expect(build.provisioner).toEqual(asRehearsed);
    expect(build.lifecycle).toEqual({ create_before_destroy: true });
    expect(build.triggers).toBeUndefined();
  });

  test("templates: self.triggers becomes self.triggers_replace, literal $${ stays literal", () => {
    const rewriter = (_d: string | undefined, type: string, name: string, key: string | undefined, rest: string) => `<${type}|${name}|${key ?? ""}|${rest}>`;
    expect(rewriteTemplate("a $${google_x.y.z} ${google_x.y.z} %%{b}", rewriter)).toBe("a $${google_x.y.z} ${<google_x|y||.z>} %%{b}");
    // A brace inside a quoted string does not end the interpolation.
    expect(rewriteTemplate('${format("}%s{", google_x.y.z)} ${google_x.y.w}', rewriter)).toBe('${format("}%s{", <google_x|y||.z>)} ${<google_x|y||.w>}');
    const { config: c } = rehearsalConfig({
      resource: {
        null_resource: {
          r: { triggers: { a: "1" }, provisioner: [{ "local-exec": { command: "x", when: "destroy", environment: { A: "${self.triggers.a}", L: "$${literal}" } } }] },
        },
      },
    });
    expect(c.resource.terraform_data.null_resource__r.provisioner[0]["local-exec"]).toEqual({ command: "x", when: "destroy", environment: { A: "${self.triggers_replace.a}", L: "$${literal}" } });
  });

  test("step environment: listed values replace the synthesized ones, only where the step reads them; OCI pushes can go to a local registry", () => {
    const { config: c } = rehearsalConfig(stack, { stepEnvironment: { DEPLOY_RS_INSTALLABLE: "path:/doubles/deploy-rs", NOT_READ: "x" }, ociRegistry: "127.0.0.1:5000" });
    const env = standIn(c, "null_resource__vm-deploy_Deploy_").block.provisioner[0]["local-exec"].environment;
    expect(env.DEPLOY_RS_INSTALLABLE).toBe("path:/doubles/deploy-rs");
    // Values are literal text, never templates Terraform would evaluate.
    const { config: literal } = rehearsalConfig(stack, { stepEnvironment: { DEPLOY_RS_INSTALLABLE: "path:/d/${path.root}/%{ if true }x%{ endif }" } });
    expect(standIn(literal, "null_resource__vm-deploy_Deploy_").block.provisioner[0]["local-exec"].environment.DEPLOY_RS_INSTALLABLE).toBe(
      "path:/d/$${path.root}/%%{ if true }x%%{ endif }",
    );
    expect(env.NOT_READ).toBeUndefined();
    expect(standIn(c, "null_resource__base-build_Build_").block.provisioner[0]["local-exec"].environment.DEPLOY_RS_INSTALLABLE).toBeUndefined();
    expect(standIn(c, "null_resource__ingest-oci_Push_").block.provisioner[0]["local-exec"].environment).toMatchObject({
      OCI_REPOSITORY: "127.0.0.1:5000/ingest",
      OCI_AUTH: "none",
      OCI_TLS_VERIFY: "false",
    });
    // The triggers still name Artifact Registry: the plan is the real one.
    expect(standIn(c, "null_resource__ingest-oci_Push_").block.triggers_replace.reference).toMatch(/^europe-west1-docker\.pkg\.dev\//);
  });

  test("ForceNew values: nested paths, lists of blocks, and the number of blocks", () => {
    const input = { name: "a", boot_disk: { initialize_params: { size: 20 } }, network_interface: [{ nic_type: "GVNIC" }, { network: "b" }] };
    expect(forceNewValues(input, ["name", "zone", "boot_disk.initialize_params.size", "network_interface.#", "network_interface.nic_type"])).toEqual({
      name: "a",
      "boot_disk.initialize_params.size": 20,
      "network_interface.#": 2,
      "network_interface.nic_type": "GVNIC",
    });
  });

  test("what the rehearsal cannot stand in for stops it with a message naming the fix", () => {
    expect(() => rehearsalConfig({ resource: { google_sql_database: { d: { name: "x" } } } })).toThrow(
      "rehearse: google_sql_database has no entry in FORCE_NEW (tools/rehearse.ts); add its ForceNew attributes from the provider's schema",
    );
    expect(() => rehearsalConfig({ resource: { aws_instance: { i: {} } } })).toThrow("rehearse: no stand-in for resource type aws_instance");
    expect(() =>
      rehearsalConfig({ resource: { google_compute_image: { i: { name: "x" } }, null_resource: { r: { triggers: { a: "${google_compute_image.i.archive_size_bytes}" } } } } }),
    ).toThrow("rehearse: google_compute_image.i.archive_size_bytes is read, but the rehearsal has no value for it");
    expect(Object.keys(FORCE_NEW)).toEqual(expect.arrayContaining(Object.keys(stack.resource).filter((t) => t.startsWith("google_"))));
  });

  test("apply events are counted per kind of step, in Terraform's order", () => {
    const build = Object.keys(standIns).find((a) => standIns[a].kind === "build")!;
    const hook = (addr: string, action?: string) => ({ resource: { addr }, action });
    const events: TerraformEvent[] = [
      { type: "apply_start", hook: hook(build, "create") },
      { type: "provision_complete", hook: hook(build) },
      { type: "apply_complete", hook: hook(build, "create") },
      { type: "apply_start", hook: hook("terraform_data.unknown", "delete") },
      { type: "apply_complete", hook: hook("terraform_data.google_compute_instance__gone-vm_Instance_0A1B2C3D", "delete") },
      { type: "provision_errored", hook: hook(build) },
      { type: "apply_start", hook: hook(build, "delete") },
      { type: "provision_complete", hook: hook(build) },
      { type: "diagnostic", diagnostic: { severity: "error", summary: "local-exec provisioner error", detail: "exit status 1" } },
    ];
    const summary = summarizeApply(events, standIns);
    // A provisioner's run belongs to the change the address last began: the second is a destroy-time run.
    expect(summary.steps.build).toEqual({ ran: 1, ranOnDestroy: 1, failed: 1, created: 1, updated: 0, destroyed: 0 });
    expect(summary.order).toEqual([`build create ${standIns[build].original}`, "other delete terraform_data.unknown", `build delete ${standIns[build].original}`]);
    expect(summary.timeline).toContain(`ran on destroy build ${standIns[build].original}`);
    // A stand-in no longer in the configuration is named from its own name.
    expect(summary.steps.instance.destroyed).toBe(1);
    expect(summary.timeline).toContain("done instance delete google_compute_instance.gone-vm_Instance_0A1B2C3D");
    expect(summary.errors).toEqual(["local-exec provisioner error: exit status 1"]);
    // Instances of a stand-in with count or for_each are counted as the stand-in's kind.
    const keyed = summarizeApply([{ type: "provision_complete", hook: hook(`${build}[0]`) }, { type: "provision_complete", hook: hook(`${build}["b"]`) }], standIns);
    expect(keyed.steps.build.ran).toBe(2);
    expect(keyed.timeline).toEqual([`ran build ${standIns[build].original}`, `ran build ${standIns[build].original}`]);
  });
});

describeWithTool("terraform", "the rewrite through real Terraform core", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "rehearse-tf-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The rehearsal without its provisioners, so Terraform alone decides; returns each stand-in's planned action. */
  async function applyThenPlan(first: SettingsInput, second: SettingsInput): Promise<Record<string, string>> {
    const write = (input: SettingsInput) => {
      const { config } = rehearsalConfig(synthesized(input));
      for (const block of Object.values<any>(config.resource.terraform_data)) delete block.provisioner;
      writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(config));
    };
    write(first);
    for (const args of [["init"], ["validate"], ["apply", "-auto-approve"]]) {
      const run = await terraform([...args, "-no-color"], { dir });
      if (run.exitCode !== 0) throw new Error(`terraform ${args[0]} failed:\n${run.text}`);
    }
    write(second);
    const plan = await terraform(["plan", "-json", "-detailed-exitcode"], { dir });
    return Object.fromEntries(
      plan.events
        .filter((e) => e.type === "planned_change")
        .map((e) => [e.change!.resource!.addr.replace(/^terraform_data\./, "").replace(/_[0-9A-F]{8}$/, ""), e.change!.action!]),
    );
  }

  test("the bootstrap stack through Terraform: the state bucket waits for the storage API (a new project refuses it before), and a later region change leaves it alone", async () => {
    const write = (region: string) => {
      const s = parseSettings({ ...baseSettings(), region, zone: `${region}-b`, backend: { type: "gcs", bucket: "test-project-tfstate", prefix: "nixos-gce" } }, "test");
      const stack = new BootstrapStack(Testing.app() as App, "bootstrap", { settings: s });
      writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(rehearsalConfig(JSON.parse(Testing.synth(stack))).config));
    };
    write("europe-west1");
    expect((await terraform(["init", "-no-color"], { dir })).exitCode).toBe(0);
    const graph = await terraform(["graph"], { dir });
    expect(graph.text).toContain('"terraform_data.google_storage_bucket__StateBucket" -> "terraform_data.google_project_service__storage"');
    const order: string[] = [];
    const apply = await terraform(["apply", "-json", "-auto-approve"], { dir, onEvent: (e) => order.push(`${e.type} ${e.hook?.resource?.addr}`) });
    expect(apply.exitCode).toBe(0);
    expect(order.indexOf("apply_complete terraform_data.google_project_service__storage")).toBeGreaterThanOrEqual(0);
    expect(order.indexOf("apply_complete terraform_data.google_project_service__storage")).toBeLessThan(order.indexOf("apply_start terraform_data.google_storage_bucket__StateBucket"));
    // The bucket's location is ForceNew: replacing it would meet prevent_destroy, and the plan would fail.
    write("us-central1");
    const moved = await terraform(["plan", "-detailed-exitcode", "-no-color"], { dir });
    expect({ exitCode: moved.exitCode, text: moved.text }).toMatchObject({ exitCode: 0 });
  }, 60000);

  test("null_resource lifecycles and references the stack does not use yet still mean what they say", async () => {
    // a's triggers change; b is replaced only through replace_triggered_by, d through a
    // reference to a's triggers, and c's changed triggers are ignored.
    const stack = (v: string) => ({
      resource: {
        null_resource: {
          a: { triggers: { v } },
          b: { triggers: { fixed: "1" }, lifecycle: { replace_triggered_by: ["null_resource.a"] } },
          c: { triggers: { t: v }, lifecycle: { ignore_changes: ["triggers"] } },
          d: { triggers: { copy: "${null_resource.a.triggers.v}" } },
        },
      },
    });
    writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(rehearsalConfig(stack("1")).config));
    for (const args of [["init"], ["validate"], ["apply", "-auto-approve"]]) {
      const run = await terraform([...args, "-no-color"], { dir });
      if (run.exitCode !== 0) throw new Error(`terraform ${args[0]} failed:\n${run.text}`);
    }
    writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(rehearsalConfig(stack("2")).config));
    const plan = await terraform(["plan", "-json", "-detailed-exitcode"], { dir });
    const planned = Object.fromEntries(plan.events.filter((e) => e.type === "planned_change").map((e) => [e.change!.resource!.addr, e.change!.action!]));
    expect(planned).toEqual({
      "terraform_data.null_resource__a": "replace",
      "terraform_data.null_resource__b": "replace",
      "terraform_data.null_resource__d": "replace",
    });
  }, 60000);

  test("applyReviewed: a plan that fails returns that failure; a show that prints no plan is refused, and nothing is applied", async () => {
    writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify({ resource: { terraform_data: { x: { input: "${terraform_data.missing.id}" } } } }));
    expect((await terraform(["init", "-no-color"], { dir })).exitCode).toBe(0);
    const failed = await applyReviewed({ dir }, () => []);
    expect(failed.run.exitCode).not.toBe(0);
    expect(failed.run.events.filter((e) => e.type === "diagnostic").map((e) => e.diagnostic!.summary)).toContain("Reference to undeclared resource");

    // TEST DOUBLE of terraform for `show` only (a binary that prints something else); the rest is real Terraform.
    writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify({ resource: { terraform_data: { x: { input: "a" } } } }));
    const double = join(dir, "terraform-show-double");
    writeFileSync(double, `#!/bin/sh\nif [ "$1" = show ]; then echo "no plan here"; exit 0; fi\nexec ${terraformBinary()} "$@"\n`, { mode: 0o755 });
    const refused = await applyReviewed({ dir, env: { TERRAFORM_BINARY_NAME: double } }, () => []);
    expect(refused.refused).toEqual([`terraform show -json reviewed-by-rehearsal-${process.pid}.tfplan printed no plan:\nno plan here`]);
    expect(refused.run.events.some((e) => e.type === "apply_start")).toBe(false);
    expect((await terraform(["plan", "-detailed-exitcode", "-no-color"], { dir })).exitCode).toBe(2);
  }, 60000);

  test("a TERRAFORM_BINARY_NAME that is not on PATH is named, with the way back to terraform", async () => {
    await expect(terraform(["version"], { dir, env: { TERRAFORM_BINARY_NAME: "tofu-not-installed" } })).rejects.toThrow(
      'TERRAFORM_BINARY_NAME is "tofu-not-installed", which is not on PATH; install it, or unset TERRAFORM_BINARY_NAME to run terraform',
    );
  });

  test("validates, applies, and a second plan of the same stack is empty", async () => {
    expect(await applyThenPlan(everything(), everything())).toEqual({});
  }, 60000);

  test("a machine type is updated in place; a zone replaces every VM (and so its deploy)", async () => {
    const moved = everything();
    const changed = { ...moved, hosts: Object.fromEntries(Object.entries(moved.hosts!).map(([id, h]) => [id, { ...h, machineType: "e2-medium" }])) };
    expect(await applyThenPlan(everything(), changed)).toEqual({
      "google_compute_instance__vm-vm_Instance": "update",
      "google_compute_instance__edge-vm_Instance": "update",
      "google_compute_instance__pet-vm_Instance": "update",
    });
    const planned = await applyThenPlan(everything(), everything({ zone: "europe-west1-c" }));
    for (const id of ["vm", "edge", "pet"]) {
      expect(planned[`google_compute_instance__${id}-vm_Instance`]).toBe("replace");
      expect(planned[`null_resource__${id}-deploy_Deploy`]).toBe("replace");
    }
  }, 60000);

  test("top-level labels (the provider's default_labels) update every labelled resource in place, and nothing else", async () => {
    expect(await applyThenPlan(everything(), everything({ labels: { team: "data" } }))).toEqual({
      "google_compute_image__base-image_Image": "update",
      "google_compute_instance__vm-vm_Instance": "update",
      "google_compute_instance__edge-vm_Instance": "update",
      "google_compute_instance__pet-vm_Instance": "update",
      google_storage_bucket__ImageBucket: "update",
      google_artifact_registry_repository__Registry_Repository: "update",
    });
  }, 60000);

  test("deploy timeouts plan nothing; stateDir replaces only the build steps (their GC roots move) and the prune step; a dropped runsOciImages only its grant; an OCI version one push", async () => {
    expect(await applyThenPlan(everything(), everything({ deploy: { confirmTimeoutSeconds: 90, activationTimeoutSeconds: 900, sshWaitSeconds: 30, package: "deploy-rs-pinned" } }))).toEqual({});
    expect(await applyThenPlan(everything(), everything({ stateDir: ".state" }))).toEqual({
      "null_resource__base-build_Build": "replace",
      null_resource__GcRoots_Prune: "replace",
    });
    const noOci = everything();
    noOci.hosts!.vm = host();
    expect(await applyThenPlan(everything(), noOci)).toEqual({ "google_artifact_registry_repository_iam_member__Registry_Read-vm": "delete" });
    // A new OCI version is a new tag: one push, and the digest read again; nothing else.
    expect(await applyThenPlan(everything(), everything({ ociImages: { ingest: { package: "oci-ingest", version: "0.2.0" } } }))).toEqual({
      "null_resource__ingest-oci_Push": "replace",
      "data_google_artifact_registry_docker_image__ingest-oci_Pushed": "update",
    });
  }, 60000);

  test("guest OS features replace the image, its upload step and its public grant, and only the recreated VM", async () => {
    const planned = await applyThenPlan(
      everything(),
      everything({ images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", public: true, guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC"] } } }),
    );
    expect(planned).toEqual({
      "google_compute_image__base-image_Image": "replace",
      "google_compute_image_iam_member__base-image_PublicUse": "replace",
      "null_resource__base-image_Upload": "replace",
      "google_compute_instance__pet-vm_Instance": "replace",
      "null_resource__pet-deploy_Deploy": "replace",
    });
  }, 60000);

  test("a protected VM removed or replaced is refused before anything is applied (the provider refuses its delete); turned off alone first, it goes", async () => {
    const withDb = (db: Record<string, unknown> | undefined) => {
      const base = everything();
      const hosts: Record<string, any> = { ...base.hosts };
      if (db) hosts.db = host(db);
      return { ...base, hosts };
    };
    const write = (input: SettingsInput) => {
      const { config, standIns } = rehearsalConfig(synthesized(input));
      for (const block of Object.values<any>(config.resource.terraform_data)) delete block.provisioner;
      writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(config));
      return (plan: SavedPlan) => nameConflicts(plan, standIns);
    };
    write(withDb({ deletionProtection: true }));
    for (const args of [["init"], ["apply", "-auto-approve"]]) expect((await terraform([...args, "-no-color"], { dir })).exitCode).toBe(0);
    const protectedLine = (how: string) =>
      expect.stringMatching(new RegExp(`^google_compute_instance\\.db-vm_Instance_\\w+ would be deleted \\(${how}\\), but its deletion protection is on: the google provider refuses; set the host's deletionProtection to false and apply that alone first$`));
    // Removed, replaced (a disk size change), or replaced with the protection turned off in the same apply: the delete reads the old state.
    for (const [db, how] of [[undefined, "removed"], [{ deletionProtection: true, diskSizeGb: 40 }, "replaced"], [{ diskSizeGb: 40 }, "replaced"]] as const) {
      const refused = await applyReviewed({ dir }, write(withDb(db)));
      expect(refused.refused).toEqual([protectedLine(how)]);
      expect(refused.run.events.some((e) => e.type === "apply_start")).toBe(false);
    }
    // Turned off alone (an update in place), then removed: both applied.
    for (const db of [{}, undefined]) {
      const applied = await applyReviewed({ dir }, write(withDb(db)));
      expect(applied.refused).toEqual([]);
      expect(applied.run.exitCode).toBe(0);
    }
  }, 60000);

  test("a VM created before the old one is deleted under the same name (in the same zone) is refused before anything is applied", async () => {
    const pet = (diskSizeGb: number) => ({ ...everything(), hosts: { ...everything().hosts, pet: host({ recreateOnImageChange: true, diskSizeGb }) } });
    const write = (input: SettingsInput, keepName?: string) => {
      const { config, standIns } = rehearsalConfig(synthesized(input));
      for (const block of Object.values<any>(config.resource.terraform_data)) delete block.provisioner;
      const instance = standIn(config, "google_compute_instance__pet-vm_Instance").block;
      // A stand-in for the old naming, whose suffix came from the image alone.
      if (keepName) instance.input.name = keepName;
      writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(config));
      return { standIns, name: instance.input.name as string };
    };
    const review = (standIns: Record<string, StandIn>) => (plan: SavedPlan) => nameConflicts(plan, standIns);
    const first = write(pet(20));
    for (const args of [["init"], ["apply", "-auto-approve"]]) expect((await terraform([...args, "-no-color"], { dir })).exitCode).toBe(0);

    // The product's names: a disk size change gives the new VM its own name, and the plan is applied.
    const resized = write(pet(40));
    expect(resized.name).not.toBe(first.name);
    const applied = await applyReviewed({ dir }, review(resized.standIns));
    expect(applied.refused).toEqual([]);
    expect(applied.run.exitCode).toBe(0);
    expect(applied.run.events.filter((e) => e.type === "apply_complete").map((e) => `${e.hook?.action} ${e.hook?.resource?.addr}`)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^create terraform_data\.google_compute_instance__pet-vm_Instance/), expect.stringMatching(/^delete terraform_data\.google_compute_instance__pet-vm_Instance/)]),
    );

    // The same replacement under the running VM's name would be a 409 at Google: refused, nothing applied.
    const collides = write(pet(60), resized.name);
    const refused = await applyReviewed({ dir }, review(collides.standIns));
    expect(refused.refused).toEqual([
      expect.stringMatching(new RegExp(`^google_compute_instance\\.pet-vm_Instance_\\w+ is created before the old one is deleted, under the same name "${resized.name}": Google would refuse it \\(409\\)$`)),
    ]);
    expect(refused.run.events.some((e) => e.type === "apply_start")).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tfplan"))).toEqual([]);
    // A plan the caller saved is reviewed the same way, and stays the caller's.
    expect((await terraform(["plan", "-out=saved.tfplan", "-no-color"], { dir })).exitCode).toBe(0);
    const savedRefused = await applyReviewed({ dir }, review(collides.standIns), "saved.tfplan");
    expect(savedRefused.refused).toHaveLength(1);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tfplan"))).toEqual(["saved.tfplan"]);
    expect((await terraform(["plan", "-detailed-exitcode", "-no-color"], { dir })).exitCode).toBe(2);

    // Instance names are unique per zone: the same name created first in another zone is no conflict.
    const moved = write({ ...pet(60), zone: "europe-west1-c" }, resized.name);
    const movedApply = await applyReviewed({ dir }, review(moved.standIns));
    expect(movedApply.refused).toEqual([]);
    expect(movedApply.run.exitCode).toBe(0);
  }, 60000);
});
