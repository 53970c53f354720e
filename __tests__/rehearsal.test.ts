/**
 * The rehearsal: the synthesized infra stack applied by real Terraform core
 * (Google resources as terraform_data stand-ins, tools/rehearse.ts), with real
 * Nix builds of the fixture flake, the steps' real scripts, and test doubles
 * for gcloud storage, ssh and deploy-rs. Each scenario asserts what ran and
 * what did not, from `terraform apply -json` events and the doubles' logs.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { App, Testing } from "cdktf";
import { BootstrapStack } from "../constructs/bootstrap-stack.js";
import type { ApplySummary } from "../tools/apply-summary.js";
import { type Rehearsal, rehearsalConfig, STEP_KINDS, type StepKind } from "../tools/rehearse.js";
import { terraform } from "../tools/terraform.js";
import { parseSettings, type SettingsInput } from "../lib/settings.js";
import { NIX, NIX_ENV, nixSpy } from "./helpers/nix.js";
import { describeWithTools } from "./helpers/tools.js";
import { type Applied, rehearsalProject, type RehearsalProject } from "./helpers/rehearsal.js";
import { baseSettings, REAL_KEY } from "./helpers/settings.js";

const TIMEOUT = 240000;

const host = (nixosConfiguration: string, extra: Record<string, unknown> = {}) => ({ nixosConfiguration, image: "base", machineType: "e2-small", ...extra });
const twoHosts = (extra: Record<string, unknown> = {}): SettingsInput =>
  baseSettings({ hosts: { vm: host("vm", extra), worker: host("worker") } });

/** Provisioner runs per kind of step, e.g. "build 1, upload 1, deploy 2": the steps' work, or (onDestroy) their destroy-time runs. */
function ran(summary: ApplySummary, runs: "ran" | "ranOnDestroy" = "ran"): string {
  return STEP_KINDS.filter((k) => summary.steps[k][runs] > 0).map((k) => `${k} ${summary.steps[k][runs]}`).join(", ") || "nothing";
}
/** Where in the timeline an event matching the pattern happened; an event that never happened fails (-1 would pass any "before"). */
function at(summary: ApplySummary, pattern: RegExp): number {
  return found(summary.timeline, pattern);
}
/** Where in the timeline a change matching the pattern (`<kind> <action> <address>`) began. */
function startedAt(summary: ApplySummary, pattern: RegExp): number {
  return found(summary.timeline, new RegExp(`^begin ${pattern.source.replace(/^\^/, "")}`));
}
function found(lines: string[], pattern: RegExp): number {
  const index = lines.findIndex((line) => pattern.test(line));
  if (index < 0) throw new Error(`no event matches ${pattern}:\n${lines.join("\n")}`);
  return index;
}
/** node → planned toplevel, from the deploy steps of a rehearsal. */
function plannedSystems(rehearsal: Rehearsal): Record<string, string> {
  return Object.fromEntries(
    Object.entries(rehearsal.standIns)
      .filter(([, s]) => s.kind === "deploy")
      .map(([address]) => {
        const block = rehearsal.config.resource.terraform_data[address.replace("terraform_data.", "")];
        return [block.provisioner[0]["local-exec"].environment.DEPLOY_NODE, block.triggers_replace.toplevel];
      }),
  );
}
function imageStorePath(rehearsal: Rehearsal): string {
  const build = Object.entries(rehearsal.standIns).find(([, s]) => s.kind === "build")![0];
  return rehearsal.config.resource.terraform_data[build.replace("terraform_data.", "")].triggers_replace.planned_store_path;
}
const hashOf = (storePath: string) => storePath.slice("/nix/store/".length, "/nix/store/".length + 32);
const counts = (summary: ApplySummary, kind: StepKind) => summary.steps[kind];
function expectApplied(applied: Applied): ApplySummary {
  if (applied.run.exitCode !== 0) throw new Error(`apply failed:\n${applied.summary.errors.join("\n")}\n${applied.run.text}`);
  return applied.summary;
}

describeWithTools(["terraform", "nix"], "rehearsal with real Terraform and Nix", () => {
  let project: RehearsalProject | undefined;
  const figures: string[] = [];
  let started = 0;
  let steps: string[] = [];
  beforeEach(() => {
    started = Date.now();
    steps = [];
  });
  afterEach(() => {
    const name = expect.getState().currentTestName?.replace(/^.*? ([a-z])\. .*$/, "$1") ?? "?";
    if (project) figures.push(`${name}: ${project.applies} apply(s), ran [${steps.join("; ")}], ${((Date.now() - started) / 1000).toFixed(1)} s`);
    project?.cleanup();
    project = undefined;
  });
  afterAll(() => figures.length > 0 && console.log(`rehearsal figures: ${figures.join(" | ")}`));

  /** A project after its first deploy, with the no-op check every later scenario starts from. */
  async function deployed(settings: SettingsInput = twoHosts()) {
    project = await rehearsalProject(settings);
    const rehearsal = await project.synth();
    const first = expectApplied(await project.apply());
    steps.push(ran(first));
    return { project, rehearsal, first };
  }
  async function applyNow(p: RehearsalProject) {
    const rehearsal = await p.synth();
    const summary = expectApplied(await p.apply());
    steps.push(ran(summary));
    return { rehearsal, summary };
  }
  async function expectNoChanges(p: RehearsalProject) {
    const plan = await p.plan();
    if (plan.exitCode !== 0) throw new Error(`expected an empty plan (exit 0), got ${plan.exitCode}:\n${plan.text}`);
  }
  /** Changes the example flake's inputs (examples/flake/inputs.json). */
  function edit(p: RehearsalProject, change: (inputs: any) => void) {
    const inputs = p.flake.readInputs();
    change(inputs);
    p.flake.writeInputs(inputs);
  }
  /** Plans one change and saves the plan; the flake changes again; the saved plan is applied, and fails. */
  async function applyChangedAfterPlan(p: RehearsalProject, planned: (inputs: any) => void, unreviewed: (inputs: any) => void) {
    edit(p, planned);
    await p.synth();
    expect((await p.plan(["-out=reviewed.tfplan"])).exitCode).toBe(2);
    edit(p, unreviewed);
    const applied = await p.apply("reviewed.tfplan");
    steps.push(ran(applied.summary));
    expect(applied.run.exitCode).not.toBe(0);
    return applied.summary;
  }

  test("a. first deploy: build, upload, image, VMs and deploys all run, in order", async () => {
    const { project: p, rehearsal, first } = await deployed();
    expect(counts(first, "build")).toMatchObject({ ran: 1, created: 1 });
    expect(counts(first, "upload")).toMatchObject({ ran: 1, created: 1 });
    expect(counts(first, "image")).toMatchObject({ created: 1, destroyed: 0 });
    expect(counts(first, "instance")).toMatchObject({ created: 2, destroyed: 0 });
    expect(counts(first, "deploy")).toMatchObject({ ran: 2, failed: 0 });
    expect(counts(first, "gcroots")).toMatchObject({ ran: 1 });
    // Terraform's order: each step finished before the next started.
    const built = at(first, /^done build create /);
    const uploaded = at(first, /^done upload create /);
    const imaged = at(first, /^done image create /);
    expect(built).toBeGreaterThanOrEqual(0);
    expect(built).toBeLessThan(at(first, /^ran upload /));
    expect(uploaded).toBeLessThan(at(first, /^done image create /));
    for (const node of ["vm", "worker"]) {
      const vm = at(first, new RegExp(`^done instance create google_compute_instance\\.${node}-vm_`));
      expect(imaged).toBeLessThan(vm);
      expect(vm).toBeLessThan(at(first, new RegExp(`^ran deploy null_resource\\.${node}-deploy_`)));
    }
    expect(p.uploads()).toHaveLength(1);
    const systems = plannedSystems(rehearsal);
    expect(p.activations().sort()).toEqual([`vm ${systems.vm}`, `worker ${systems.worker}`]);
    expect(p.gcRoots()).toEqual([hashOf(imageStorePath(rehearsal))]);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("b. one host's services changed: exactly one deploy, no build, upload or image", async () => {
    const { project: p } = await deployed();
    const inputs = p.flake.readInputs();
    inputs.configurations.worker.services = "pipeline v2";
    p.flake.writeInputs(inputs);
    const { rehearsal, summary } = await applyNow(p);
    expect(ran(summary)).toBe("deploy 1");
    expect(summary.timeline.filter((l) => l.startsWith("ran deploy"))).toEqual([expect.stringMatching(/^ran deploy null_resource\.worker-deploy_/)]);
    for (const kind of ["build", "upload", "image", "instance"] as const) expect(counts(summary, kind)).toMatchObject({ ran: 0, created: 0, destroyed: 0 });
    expect(p.uploads()).toHaveLength(1);
    expect(p.activations().at(-1)).toBe(`worker ${plannedSystems(rehearsal).worker}`);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("c. no-op: plan -detailed-exitcode exits 0 and a second apply runs nothing", async () => {
    const { project: p } = await deployed();
    await p.synth();
    await expectNoChanges(p);
    const { summary } = await applyNow(p);
    expect(ran(summary)).toBe("nothing");
    expect(summary.order).toEqual([]);
  }, TIMEOUT);

  test("d. image changed: new build, upload and image; the old GC root goes; no VM is replaced", async () => {
    const { project: p, rehearsal: before } = await deployed();
    const inputs = p.flake.readInputs();
    inputs.configurations["gce-base"].image = "base v2";
    p.flake.writeInputs(inputs);
    const { rehearsal: after, summary } = await applyNow(p);
    expect(counts(summary, "build")).toMatchObject({ ran: 1, created: 1, destroyed: 1 });
    expect(counts(summary, "upload")).toMatchObject({ ran: 1 });
    expect(counts(summary, "image")).toMatchObject({ created: 1, destroyed: 1 });
    expect(counts(summary, "instance")).toEqual({ ran: 0, ranOnDestroy: 0, failed: 0, created: 0, updated: 0, destroyed: 0 });
    expect(counts(summary, "deploy").ran).toBe(0);
    expect(counts(summary, "gcroots").ran).toBe(1);
    // The new image exists before the old one is deleted (create_before_destroy).
    expect(at(summary, /^done image delete /)).toBeGreaterThan(at(summary, /^done image create /));
    expect(p.gcRoots()).toEqual([hashOf(imageStorePath(after))]);
    expect(hashOf(imageStorePath(after))).not.toBe(hashOf(imageStorePath(before)));
    expect(p.uploads()).toHaveLength(2);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("e. recreateOnImageChange: the old VM is destroyed only after the new image and the new VM exist; a kept VM replaced by hand (-replace) goes first, under its one name", async () => {
    const { project: p } = await deployed(twoHosts({ recreateOnImageChange: true }));
    const inputs = p.flake.readInputs();
    inputs.configurations["gce-base"].image = "base v2";
    p.flake.writeInputs(inputs);
    const { rehearsal, summary } = await applyNow(p);
    const vm = /google_compute_instance\.vm-vm_/;
    expect(counts(summary, "instance")).toMatchObject({ created: 1, destroyed: 1 });
    expect(summary.timeline.filter((l) => /^done instance/.test(l) && !vm.test(l))).toEqual([]);
    const oldVmDeleted = startedAt(summary, /^instance delete google_compute_instance\.vm-vm_/);
    expect(oldVmDeleted).toBeGreaterThan(startedAt(summary, /^image create /));
    expect(oldVmDeleted).toBeGreaterThan(startedAt(summary, /^instance create google_compute_instance\.vm-vm_/));
    // In completion order too: the new image and the new VM were done before the old VM's delete began.
    const deleteStarted = at(summary, /^done instance delete /);
    expect(at(summary, /^done image create /)).toBeLessThan(deleteStarted);
    expect(at(summary, /^done instance create /)).toBeLessThan(deleteStarted);
    // The new VM (a new instance id) is deployed; the other host is not.
    expect(summary.timeline.filter((l) => l.startsWith("ran deploy"))).toEqual([expect.stringMatching(/^ran deploy null_resource\.vm-deploy_/)]);
    expect(p.activations().at(-1)).toBe(`vm ${plannedSystems(rehearsal).vm}`);
    await expectNoChanges(p);

    // A bigger disk also replaces the VM, first beside the old one: under a name of its own (the apply reviews the plan for that).
    p.settings = { ...p.settings, hosts: { ...p.settings.hosts, vm: { ...p.settings.hosts!.vm, diskSizeGb: 40 } } };
    const resized = await applyNow(p);
    expect(counts(resized.summary, "instance")).toMatchObject({ created: 1, destroyed: 1 });
    expect(startedAt(resized.summary, /^instance delete /)).toBeGreaterThan(startedAt(resized.summary, /^instance create /));
    expect(ran(resized.summary)).toBe("deploy 1");
    await expectNoChanges(p);

    // The image gains UEFI_COMPATIBLE, so the flake builds its hosts' systems for UEFI (a services change
    // stands for that here: the fixture flake does not derive a boot mode). The new VM boots the new image
    // and is deployed; the kept one still boots BIOS, and its deploy refuses before deploy-rs runs.
    const before = p.activations();
    p.settings = { ...p.settings, images: { base: { ...p.settings.images!.base, guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE", "UEFI_COMPATIBLE"] } } };
    const uefiInputs = p.flake.readInputs();
    for (const c of ["vm", "worker"]) uefiInputs.configurations[c].services += ", built for UEFI";
    p.flake.writeInputs(uefiInputs);
    const uefi = await p.synth();
    const refused = await p.apply();
    steps.push(ran(refused.summary));
    expect(refused.run.exitCode).not.toBe(0);
    expect(counts(refused.summary, "deploy")).toMatchObject({ failed: 1 });
    expect(refused.summary.errors.join("\n")).toMatch(
      /deploy-rs\[worker\]: host worker booted with BIOS, but its configuration worker is built for UEFI .*replace the VM: terraform apply -replace='google_compute_instance\.worker-vm_Instance_\w+', or set hosts\.worker\.recreateOnImageChange; nothing was deployed/,
    );
    expect(p.activations()).toEqual([...before, `vm ${plannedSystems(uefi).vm}`]);

    // Done as the refusal says: the kept VM is replaced old first, since it has one name (a step made
    // create_before_destroy after it, the deploy step, would force that onto the VM, and the rehearsal refuse the 409).
    const instance = Object.entries(uefi.standIns).find(([, s]) => s.original.startsWith("google_compute_instance.worker-vm_Instance_"))![0];
    const replaced = expectApplied(await p.apply(undefined, [`-replace=${instance}`]));
    steps.push(ran(replaced));
    expect(counts(replaced, "instance")).toMatchObject({ created: 1, destroyed: 1 });
    expect(at(replaced, /^done instance delete /)).toBeLessThan(at(replaced, /^done instance create /));
    expect(ran(replaced)).toBe("deploy 1");
    expect(p.activations().at(-1)).toBe(`worker ${plannedSystems(uefi).worker}`);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("f. a fresh runner (no GC roots, image absent from the store): the plan is empty", async () => {
    const { project: p, rehearsal } = await deployed();
    const image = imageStorePath(rehearsal);
    rmSync(join(p.root, ".infra", "gcroots"), { recursive: true, force: true });
    await execa("nix", ["store", "delete", image], { env: NIX_ENV });
    expect(existsSync(image)).toBe(false);
    await p.synth();
    await expectNoChanges(p);
    const { summary } = await applyNow(p);
    expect(ran(summary)).toBe("nothing");
    expect(existsSync(image)).toBe(false);
  }, TIMEOUT);

  test("g. the flake changed between plan and apply: each step refuses before acting; a deploy step Terraform replaces refuses before it is destroyed", async () => {
    const { project: p } = await deployed();
    const activations = p.activations();
    const unreviewedImage = (i: any) => (i.configurations["gce-base"].image = "base v3, not reviewed");

    // An image change alone: no deploy step is replaced, and the build refuses.
    const image = await applyChangedAfterPlan(p, (i) => (i.configurations["gce-base"].image = "base v2"), unreviewedImage);
    expect(image.steps.build).toMatchObject({ ran: 0, failed: 1 });
    expect(image.errors.join("\n")).toContain("nix-image: the flake changed after synth");
    // Refused before building: the unreviewed image was evaluated, never built.
    expect(image.errors.join("\n")).not.toContain("nix-image: building");
    expect(counts(image, "upload").ran).toBe(0);
    expect(counts(image, "image").created).toBe(0);
    expect(p.uploads()).toHaveLength(1);

    // An image and a service change: Terraform destroys the replaced deploy step before it creates what the step
    // depends on, the build among them. The step's destroy check refuses first, so it stays, and the build never starts.
    const refusedByDeploy = /deploy-rs\[worker\]: the flake changed after synth; .*the deploy step and its host are left as they were/;
    const kept = await applyChangedAfterPlan(
      p,
      (i) => {
        i.configurations["gce-base"].image = "base v2";
        i.configurations.worker.services = "pipeline v2";
      },
      unreviewedImage,
    );
    expect(kept.errors.join("\n")).toMatch(refusedByDeploy);
    expect(ran(kept)).toBe("nothing");

    // A service change alone, then changed: the same check refuses.
    const deploy = await applyChangedAfterPlan(
      p,
      (i) => {
        i.configurations["gce-base"].image = "base v1";
        i.configurations.worker.services = "pipeline v4";
      },
      (i) => (i.configurations.worker.services = "pipeline v5, not reviewed"),
    );
    expect(deploy.errors.join("\n")).toMatch(refusedByDeploy);
    expect(p.activations()).toEqual(activations);

    // Recoverable: a new plan of what the flake says now applies cleanly. The build refused first is tainted, so it runs again.
    const { summary } = await applyNow(p);
    expect(ran(summary)).toBe("build 1, deploy 1");
    await expectNoChanges(p);
  }, TIMEOUT);

  test("g2. a refused build leaves the next apply nothing to redo but the build; the deploy steps of changed hosts stay", async () => {
    const { project: p } = await deployed();
    const activations = p.activations();
    const roots = p.gcRoots();
    const original = p.flake.readInputs();
    const redoneAfterRefusal = async (planned: (inputs: any) => void) => {
      await applyChangedAfterPlan(p, planned, (i) => (i.configurations["gce-base"].image = "base v3, not reviewed"));
      // The change is dropped: the flake is back to what the hosts run.
      p.flake.writeInputs(original);
      const { summary } = await applyNow(p);
      await expectNoChanges(p);
      expect(p.activations()).toEqual(activations);
      expect(p.gcRoots()).toEqual(roots);
      return ran(summary);
    };
    // An image and a host change: the deploy step refuses before it is destroyed, so nothing ran and nothing is left.
    expect(
      await redoneAfterRefusal((i) => {
        i.configurations["gce-base"].image = "base v2";
        i.configurations.worker.services = "pipeline v2";
      }),
    ).toBe("nothing");
    // An image change alone: the build refuses, and is tainted; it alone runs again.
    expect(await redoneAfterRefusal((i) => (i.configurations["gce-base"].image = "base v2"))).toBe("build 1");
  }, TIMEOUT);

  test("h. an object deleted out of band: the plan stays empty, and a later image change from a fresh runner rebuilds and re-uploads", async () => {
    const { project: p, rehearsal } = await deployed();
    const upload = Object.values(rehearsal.config.resource.terraform_data).find((b: any) => b.provisioner?.[0]["local-exec"].command === "constructs/gce-image.sh") as any;
    const object = p.objectFile(upload.provisioner[0]["local-exec"].environment.UPLOAD_OBJECT);
    expect(existsSync(object)).toBe(true);
    rmSync(object);
    await p.synth();
    await expectNoChanges(p);

    // A fresh runner, and a change Google makes a new image for, without any Nix change.
    const image = imageStorePath(rehearsal);
    rmSync(join(p.root, ".infra", "gcroots"), { recursive: true, force: true });
    await execa("nix", ["store", "delete", image], { env: NIX_ENV });
    p.settings = { ...p.settings, images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC"] } } };
    const { summary } = await applyNow(p);
    expect(counts(summary, "upload").ran).toBe(1);
    expect(counts(summary, "build").ran).toBe(0);
    expect(counts(summary, "image")).toMatchObject({ created: 1, destroyed: 1 });
    expect(counts(summary, "instance")).toMatchObject({ created: 0, destroyed: 0 });
    expect(existsSync(object)).toBe(true);
    expect(existsSync(image)).toBe(true);
    expect(p.gcRoots()).toEqual([hashOf(image)]);
    expect(p.uploads()).toHaveLength(2);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("i. steps evaluate the flake in parallel: two images of one configuration both build, share one object and one GC root", async () => {
    // Without eval-cache=false, concurrent evaluations of one flake failed on Nix 2.8
    // ("SQLite database ... is busy", then an attribute "unexpectedly missing").
    const spy = nixSpy();
    try {
      project = await rehearsalProject(
        baseSettings({
          images: { base: { nixosConfiguration: "gce-base", family: "nixos-base" }, twin: { nixosConfiguration: "gce-base", family: "nixos-twin" } },
          hosts: { vm: host("vm"), worker: host("worker", { image: "twin" }) },
        }),
        { path: [spy.binDir] },
      );
      const rehearsal = await project.synth();
      const { summary } = await applyNow(project);
      expect(counts(summary, "build")).toMatchObject({ ran: 2, failed: 0 });
      expect(counts(summary, "upload")).toMatchObject({ ran: 2, failed: 0 });
      expect(counts(summary, "image").created).toBe(2);
      expect(counts(summary, "deploy")).toMatchObject({ ran: 2, failed: 0 });
      expect(project.uploads()).toHaveLength(1);
      expect(project.gcRoots()).toEqual([hashOf(imageStorePath(rehearsal))]);
      const calls = spy.calls();
      expect(calls.filter((argv) => argv.includes("eval")).length).toBeGreaterThanOrEqual(4);
      expect(calls.filter((argv) => !argv.join(" ").includes("--option eval-cache false"))).toEqual([]);
      await expectNoChanges(project);
    } finally {
      spy.cleanup();
    }
  }, TIMEOUT);

  test("j. a host removed: its VM, firewall, account and deploy step go; nothing runs", async () => {
    const { project: p } = await deployed();
    p.settings = { ...p.settings, hosts: { vm: host("vm") } };
    const { summary } = await applyNow(p);
    expect(ran(summary)).toBe("nothing");
    expect(counts(summary, "instance")).toMatchObject({ created: 0, destroyed: 1 });
    expect(counts(summary, "deploy")).toMatchObject({ ran: 0, destroyed: 1 });
    expect(summary.timeline.filter((l) => l.startsWith("done")).every((l) => /(worker-vm|worker-deploy)_/.test(l))).toBe(true);
    expect(summary.order).toHaveLength(6); // instance, firewall, account, its two roles, deploy step
    await expectNoChanges(p);
  }, TIMEOUT);

  test("k. an image id renamed: the new image would take the old one's name (409), so the apply is refused; moved in the state, nothing is rebuilt", async () => {
    const { project: p, rehearsal: before } = await deployed();
    const rename = (hosts: SettingsInput["hosts"]) => Object.fromEntries(Object.entries(hosts!).map(([id, h]) => [id, { ...h, image: "main" }]));
    p.settings = { ...p.settings, images: { main: p.settings.images!.base }, hosts: rename(p.settings.hosts) };
    const after = await p.synth();
    // Terraform deletes the old address and creates the new one in no set order; Google keys images by name.
    await expect(p.apply()).rejects.toThrow(
      /google_compute_image\.main-image_Image_\w+ is created under the name "nixos-base-\w+", which google_compute_image\.base-image_Image_\w+ holds until it is deleted in this same apply, in no set order: Google would refuse it \(409\); move the state instead/,
    );
    // What README says to do: move the image's build, upload and image to their new addresses.
    const address = (r: Rehearsal, original: string) => Object.entries(r.standIns).find(([, s]) => s.original.startsWith(original))![0];
    for (const part of ["null_resource.%-build_Build_", "null_resource.%-image_Upload_", "google_compute_image.%-image_Image_"]) {
      const [from, to] = [address(before, part.replace("%", "base")), address(after, part.replace("%", "main"))];
      expect((await terraform(["state", "mv", from, to], { dir: p.stackDir, env: p.env })).exitCode).toBe(0);
    }
    const { summary } = await applyNow(p);
    expect(ran(summary)).toBe("nothing");
    // Only the image's label image-id changes, in place.
    expect(summary.order).toEqual([expect.stringMatching(/^image update google_compute_image\.main-image_Image_/)]);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("l. settings Google updates in place (SSH path, machine type, labels) and deploy timeouts: no step runs, nothing is replaced; deploys over direct SSH; new keys reach the metadata before the deploy", async () => {
    const { project: p } = await deployed();
    const setVm = (extra: Record<string, unknown>) => (p.settings = { ...p.settings, hosts: { ...p.settings.hosts, vm: { ...p.settings.hosts!.vm, ...extra } } });
    const inPlace = async (expected: string[]) => {
      const { summary } = await applyNow(p);
      expect(ran(summary)).toBe("nothing");
      expect(summary.order.map((l) => l.replace(/_[0-9A-F]{8}$/, "")).sort()).toEqual(expected.sort());
      await expectNoChanges(p);
    };
    // Direct SSH and back: the VM's access config and the firewall's ranges change; the deploy does not run again.
    setVm({ sshSourceRanges: ["203.0.113.0/24"] });
    await inPlace(["instance update google_compute_instance.vm-vm_Instance", "other update google_compute_firewall.vm-vm_SshFirewall"]);
    // Deploys over direct SSH: the wait reads the banner at the external IP (the rehearsal's loopback double,
    // which every direct host shares); two such hosts deployed at once each get their own system.
    const direct = { ...p.settings.hosts!.worker, sshSourceRanges: ["203.0.113.0/24"] };
    p.settings = { ...p.settings, deploy: { sshWaitSeconds: 10 }, hosts: { ...p.settings.hosts, worker: direct } };
    const services = p.flake.readInputs();
    services.configurations.vm.services = "postgresql, direct";
    services.configurations.worker.services = "pipeline, direct";
    p.flake.writeInputs(services);
    const overDirect = await applyNow(p);
    expect(ran(overDirect.summary)).toBe("deploy 2");
    const systems = plannedSystems(overDirect.rehearsal);
    expect(p.activations().slice(-2).sort()).toEqual([`vm ${systems.vm}`, `worker ${systems.worker}`]);
    // The doubles keep each VM's system under its instance (HostKeyAlias), not the address both share.
    const hostState = join(p.root, ".infra", "rehearsal", "hosts", "hosts");
    const reported = readdirSync(hostState)
      .filter((h) => /^(vm|worker)-[0-9a-f-]{36}$/.test(h))
      .map((h) => readFileSync(join(hostState, h, "current-system"), "utf8").trim());
    expect(reported.sort()).toEqual([systems.vm, systems.worker].sort());
    await expectNoChanges(p);
    p.settings = { ...p.settings, hosts: { ...p.settings.hosts, worker: { ...direct, sshSourceRanges: undefined } } };
    setVm({ sshSourceRanges: undefined });
    await inPlace([
      "instance update google_compute_instance.vm-vm_Instance",
      "other update google_compute_firewall.vm-vm_SshFirewall",
      "instance update google_compute_instance.worker-vm_Instance",
      "other update google_compute_firewall.worker-vm_SshFirewall",
    ]);
    // Deploy timeouts change how the next deploy runs, not what a host runs: no deploy.
    setVm({ machineType: "e2-medium", labels: { role: "db" } });
    p.settings = { ...p.settings, labels: { team: "data" }, deploy: { confirmTimeoutSeconds: 60, activationTimeoutSeconds: 600, sshWaitSeconds: 120 } };
    await inPlace([
      "instance update google_compute_instance.vm-vm_Instance",
      "instance update google_compute_instance.worker-vm_Instance",
      "image update google_compute_image.base-image_Image",
      "other update google_storage_bucket.ImageBucket",
    ]);

    // New keys: the metadata carries them at once; the flake declares them in the image and the host's system.
    setVm({ sshKeys: [REAL_KEY] });
    const inputs = p.flake.readInputs();
    inputs.configurations["gce-base"].image = "base, new keys";
    inputs.configurations.vm.services = "postgresql, new keys";
    p.flake.writeInputs(inputs);
    const { summary } = await applyNow(p);
    expect(ran(summary)).toBe("build 1, upload 1, deploy 1, gcroots 1");
    expect(counts(summary, "instance")).toMatchObject({ created: 0, updated: 1, destroyed: 0 });
    expect(at(summary, /^done instance update google_compute_instance\.vm-vm_/)).toBeLessThan(at(summary, /^ran deploy null_resource\.vm-deploy_/));
    await expectNoChanges(p);
  }, TIMEOUT);

  test("m. an apply interrupted during the build (Ctrl-C): the build is tainted, no lock is left, and the next apply finishes the change", async () => {
    const bin = mkdtempSync(join(tmpdir(), "slow-nix-"));
    const slow = join(bin, "slow");
    // A build that takes long enough to be interrupted: nix build waits while the flag file exists.
    writeFileSync(join(bin, "nix"), `#!/bin/sh\nfor a in "$@"; do [ "$a" = build ] && [ -e '${slow}' ] && { echo "slow nix: building" >&2; sleep 60; }; done\nexec '${NIX}' "$@"\n`, { mode: 0o755 });
    try {
      project = await rehearsalProject(twoHosts(), { path: [bin] });
      const p = project;
      await p.synth();
      steps.push(ran(expectApplied(await p.apply())));
      const inputs = p.flake.readInputs();
      inputs.configurations["gce-base"].image = "base v2";
      inputs.configurations.vm.services = "postgresql v2";
      p.flake.writeInputs(inputs);
      await p.synth();
      writeFileSync(slow, "");
      // Ctrl-C reaches the whole foreground process group: Terraform, the step's bash and nix.
      const child = p.spawnApply();
      let output = "";
      for (const stream of [child.stdout, child.stderr]) stream.on("data", (d) => (output += d));
      const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
      for (const deadline = Date.now() + 60000; !output.includes("slow nix: building"); ) {
        if (Date.now() > deadline) throw new Error(`the build never started:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      process.kill(-child.pid!, "SIGINT");
      expect(await closed).not.toBe(0);
      rmSync(slow);
      expect(output).toContain("Interrupt received");
      steps.push("interrupted during the build");
      expect(existsSync(join(p.stackDir, ".terraform.tfstate.lock.info"))).toBe(false);
      expect(p.activations()).toHaveLength(2);

      const plan = await p.plan();
      expect(plan.exitCode).toBe(2);
      expect(plan.text).toMatch(/null_resource__base-build_Build_\w+ is tainted, so must be replaced/);
      const { summary } = await applyNow(p);
      expect(ran(summary)).toBe("build 1, upload 1, deploy 1, gcroots 1");
      expect(counts(summary, "image")).toMatchObject({ created: 1, destroyed: 1 });
      expect(p.activations().at(-1)).toMatch(/^vm /);
      expect(p.gcRoots()).toHaveLength(1);
      await expectNoChanges(p);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  }, TIMEOUT);

  test("n. a step failing at its worst moment (an upload broken off, an image create refused, deploy-rs failing or rolling back, SSH never answering on a recreated VM): nothing after it runs, the old VM survives, and each rerun converges", async () => {
    const { project: p } = await deployed(
      baseSettings({ deploy: { sshWaitSeconds: 1 }, hosts: { vm: host("vm", { recreateOnImageChange: true }), worker: host("worker") } }),
    );
    const recorder = join(p.root, ".infra", "rehearsal", "hosts");
    const gcs = join(p.root, ".infra", "rehearsal", "gcs");
    const objects = () => readdirSync(join(gcs, p.settings.imageBucket!), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    const activations = p.activations();
    const [oldRoot] = p.gcRoots();
    const failed = async () => {
      const applied = await p.apply();
      steps.push(`${ran(applied.summary)}, failed`);
      expect(applied.run.exitCode).not.toBe(0);
      return applied.summary;
    };
    // A failed upload or image import: no new image, no VM touched, the old image's GC root kept.
    const stoppedBeforeImage = (summary: ApplySummary, objectCount: number) => {
      expect(counts(summary, "image").created).toBe(0);
      expect(counts(summary, "instance")).toMatchObject({ created: 0, destroyed: 0 });
      expect(objects()).toHaveLength(objectCount);
      expect(p.gcRoots()).toContain(oldRoot);
    };
    // Nothing reached a host, and the next plan names what is left to do.
    const held = async (pending: RegExp) => {
      expect(p.activations()).toEqual(activations);
      const plan = await p.plan();
      expect(plan.exitCode).toBe(2);
      expect(plan.text).toMatch(pending);
    };
    const inputs = p.flake.readInputs();
    inputs.configurations["gce-base"].image = "base v2";
    p.flake.writeInputs(inputs);

    // The upload breaks off halfway: no object (Cloud Storage shows none for an unfinished upload), no image, no VM.
    writeFileSync(join(gcs, "cp.fail"), "");
    await p.synth();
    const upload = await failed();
    expect(upload.steps.upload).toMatchObject({ ran: 0, failed: 1 });
    expect(upload.errors.join("\n")).toContain("HTTPError 503");
    stoppedBeforeImage(upload, 1);
    await held(/null_resource__base-image_Upload_\w+ is tainted, so must be replaced/);

    // The upload succeeds, and Google refuses the image (an import error): the provider records no image
    // (it clears the id of a create that failed), which a precondition failing at apply time stands in for.
    rmSync(join(gcs, "cp.fail"));
    const refused = await p.synth();
    const address = (kind: string) => Object.entries(refused.standIns).find(([, s]) => s.original.startsWith(kind))![0];
    refused.config.resource.terraform_data[address("google_compute_image.").replace("terraform_data.", "")].lifecycle.precondition = [
      { condition: `\${${address("google_storage_bucket.")}.input.name != "" && !fileexists("image.fail")}`, error_message: "image import refused: not a disk image" },
    ];
    writeFileSync(join(p.stackDir, "cdk.tf.json"), JSON.stringify(refused.config));
    expect((await p.plan(["-out=reviewed.tfplan"])).exitCode).toBe(2);
    writeFileSync(join(p.stackDir, "image.fail"), "");
    const create = (await p.apply("reviewed.tfplan")).summary;
    rmSync(join(p.stackDir, "image.fail"));
    steps.push(`${ran(create)}, failed`);
    expect(create.steps.upload).toMatchObject({ ran: 1, failed: 0 });
    expect(create.errors.join("\n")).toContain("image import refused");
    stoppedBeforeImage(create, 2);
    // The old image stays (deposed) until its successor exists.
    await held(/google_compute_image__base-image_Image_\w+ will be created[\s\S]*google_compute_image__base-image_Image_\w+ \(deposed object \w+\) will be destroyed/);

    // The image and the new VM are created; deploy-rs fails on it, then rolls back (exiting 0), then SSH never
    // answers. The old VM stays (deposed): it is deleted only after its successor is deployed.
    const deploys: Array<[string, () => void, string]> = [
      ["fail", () => writeFileSync(join(recorder, "deploy-rs.mode"), "fail"), "failed; rolled back"],
      ["rollback", () => writeFileSync(join(recorder, "deploy-rs.mode"), "rollback"), "the deploy was rolled back"],
      ["ssh down", () => (rmSync(join(recorder, "deploy-rs.mode")), writeFileSync(join(recorder, "ssh.down"), "")), "(deploy.sshWaitSeconds; last answer: ssh: connect to host vm-"],
    ];
    for (const [what, inject, error] of deploys) {
      inject();
      const rehearsal = await p.synth();
      const deploy = await failed();
      expect([what, deploy.steps.deploy]).toEqual([what, expect.objectContaining({ ran: 0, failed: 1 })]);
      expect(deploy.errors.join("\n")).toContain(error);
      expect(counts(deploy, "instance").destroyed).toBe(0);
      if (what === "fail") expect(counts(deploy, "instance").created).toBe(1);
      expect(deploy.steps.upload.ran + deploy.steps.build.ran).toBe(0);
      await held(/google_compute_instance__vm-vm_Instance_\w+ \(deposed object \w+\) will be destroyed[\s\S]*null_resource__vm-deploy_Deploy_\w+ is tainted, so must be replaced/);
      expect(Object.values(plannedSystems(rehearsal))).toHaveLength(2);
    }

    // All well again: the new VM is deployed, then the old one goes. (The old GC root went with the new image.)
    rmSync(join(recorder, "ssh.down"));
    const { rehearsal, summary } = await applyNow(p);
    expect(ran(summary)).toBe("deploy 1");
    expect(counts(summary, "instance")).toMatchObject({ created: 0, destroyed: 1 });
    expect(at(summary, /^ran deploy null_resource\.vm-deploy_/)).toBeLessThan(at(summary, /^done instance delete google_compute_instance\.vm-vm_/));
    expect(p.activations()).toEqual([...activations, `vm ${plannedSystems(rehearsal).vm}`]);
    expect(p.gcRoots()).toEqual([hashOf(imageStorePath(rehearsal))]);
    expect(p.uploads()).toHaveLength(3); // the first deploy's, the broken one and its retry
    await expectNoChanges(p);
  }, TIMEOUT);

  test("o. an apply killed outright (SIGKILL) during a deploy: Terraform recorded the step before it finished, so the next plan is empty; apply -replace of that step deploys (README)", async () => {
    const { project: p } = await deployed();
    const recorder = join(p.root, ".infra", "rehearsal", "hosts");
    const activations = p.activations();
    const inputs = p.flake.readInputs();
    inputs.configurations.vm.services = "postgresql v2";
    inputs.configurations.worker.services = "pipeline v2";
    p.flake.writeInputs(inputs);
    const rehearsal = await p.synth();
    // Terraform saves its state as each change completes, with every change under way in it as if done:
    // vm's deploy completes while worker's hangs.
    writeFileSync(join(recorder, "deploy-rs.mode.worker"), "hang");
    writeFileSync(join(recorder, "deploy-rs.mode.vm"), "slow");
    // Terraform alone is killed (a lost runner): its steps run on in its process group until the test ends them.
    const child = p.spawnApply();
    let output = "";
    for (const stream of [child.stdout, child.stderr]) stream.on("data", (d) => (output += d));
    const closed = new Promise((resolve) => child.on("close", resolve));
    try {
      for (const deadline = Date.now() + 60000; !(output.includes("(hangs)") && /null_resource__vm-deploy_\w+: Creation complete/.test(output)); ) {
        if (Date.now() > deadline) throw new Error(`the deploy never started:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Killed between two writes of its state: Terraform rewrites terraform.tfstate in place (truncate, then
      // write), and a kill during a write leaves it empty or cut short (README: A failed or interrupted apply).
      const saved = () => {
        try {
          const state = JSON.parse(readFileSync(join(p.stackDir, "terraform.tfstate"), "utf8"));
          return state.resources.some((r: { name: string }) => r.name.startsWith("null_resource__worker-deploy_"));
        } catch {
          return false;
        }
      };
      for (const deadline = Date.now() + 30000; !saved(); ) {
        if (Date.now() > deadline) throw new Error(`the state never recorded worker's deploy:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      process.kill(child.pid!, "SIGKILL");
      await closed;
    } finally {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // the group is gone
      }
    }
    steps.push("deploy 1 of 2, killed");
    rmSync(join(recorder, "deploy-rs.mode.worker"));
    rmSync(join(recorder, "deploy-rs.mode.vm"));
    expect(p.activations()).toEqual([...activations, `vm ${plannedSystems(rehearsal).vm}`]);
    // worker's deploy never finished, yet the plan is empty: a silent skip, unless the step is replaced.
    await expectNoChanges(p);
    const step = Object.entries(rehearsal.standIns).find(([, s]) => s.original.startsWith("null_resource.worker-deploy_"))![0];
    const replaced = p.spawnApply([`-replace=${step}`]);
    let replacedOutput = "";
    for (const stream of [replaced.stdout, replaced.stderr]) stream.on("data", (d) => (replacedOutput += d));
    expect([await new Promise((resolve) => replaced.on("close", resolve)), replacedOutput]).toEqual([0, expect.stringContaining("Apply complete!")]);
    steps.push("deploy 1 (replaced)");
    expect(p.activations()).toEqual([...activations, `vm ${plannedSystems(rehearsal).vm}`, `worker ${plannedSystems(rehearsal).worker}`]);
    await expectNoChanges(p);
  }, TIMEOUT);

  test("p. teardown (cdktf destroy infra): a protected VM stops it before anything goes; then everything goes in reverse order, the GC root is dropped and the bucket goes with its uploads; known_hosts and locks stay; bootstrap's state bucket refuses", async () => {
    const { project: p, rehearsal } = await deployed(baseSettings({ hosts: { vm: host("vm", { deletionProtection: true }), worker: host("worker") } }));
    const image = imageStorePath(rehearsal);
    const bucket = p.objectFile("");
    expect(readdirSync(bucket, { recursive: true }).length).toBeGreaterThan(0);
    const state = async () => (await terraform(["state", "list"], { dir: p.stackDir, env: p.env })).text.split("\n").filter(Boolean);
    const deployedState = await state();

    // The destroy plan is reviewed as an apply's is: the provider would refuse the protected VM's delete.
    await expect(p.destroy()).rejects.toThrow(
      /google_compute_instance\.vm-vm_Instance_\w+ would be deleted \(removed\), but its deletion protection is on: the google provider refuses; set the host's deletionProtection to false and apply that alone first/,
    );
    expect(await state()).toEqual(deployedState);
    p.settings = { ...p.settings, hosts: { ...p.settings.hosts, vm: host("vm") } };
    const unprotected = await applyNow(p);
    expect(unprotected.summary.order).toEqual([expect.stringMatching(/^instance update google_compute_instance\.vm-vm_/)]);

    const destroyed = expectApplied(await p.destroy());
    steps.push(`destroy: ${ran(destroyed, "ranOnDestroy")} on destroy`);
    expect(await state()).toEqual([]);
    expect(destroyed.order).toHaveLength(deployedState.length);
    expect(destroyed.order.every((l) => / delete /.test(l))).toBe(true);
    // Reverse order: what depends on a resource is gone before it goes.
    const done = (pattern: RegExp) => at(destroyed, new RegExp(`^done \\w+ delete ${pattern.source}`));
    const begun = (pattern: RegExp) => startedAt(destroyed, new RegExp(`^\\w+ delete ${pattern.source}`));
    const [build, upload, img, gcRoots, bucketAt] = [/null_resource\.base-build_/, /null_resource\.base-image_Upload_/, /google_compute_image\./, /null_resource\.GcRoots_/, /google_storage_bucket\./];
    for (const node of ["vm", "worker"]) {
      const vm = new RegExp(`google_compute_instance\\.${node}-vm_`);
      expect(done(new RegExp(`null_resource\\.${node}-deploy_`))).toBeLessThan(begun(vm));
      expect(done(new RegExp(`google_compute_firewall\\.${node}-vm_`))).toBeGreaterThan(done(new RegExp(`null_resource\\.${node}-deploy_`)));
      expect(done(vm)).toBeLessThan(begun(new RegExp(`google_service_account\\.${node}-vm_`)));
      expect(done(vm)).toBeLessThan(begun(img));
    }
    expect(done(gcRoots)).toBeLessThan(begun(img));
    expect(done(img)).toBeLessThan(begun(upload));
    expect(done(upload)).toBeLessThan(begun(build));
    expect(done(upload)).toBeLessThan(begun(bucketAt));
    // Only destroy steps ran: the build's, which drops its GC root, each deploy step's check of the flake, and the
    // provider's bucket delete (acted out on the double); nothing deployed, uploaded or built.
    expect(ran(destroyed)).toBe("nothing");
    expect(ran(destroyed, "ranOnDestroy")).toBe("build 1, deploy 2, other 1");
    expect(p.gcRoots()).toEqual([]);
    expect((await execa("nix-store", ["--query", "--roots", image], { env: NIX_ENV })).stdout).toBe("");
    // The bucket went with the uploads in it (force_destroy: they are not in the state).
    expect(existsSync(bucket)).toBe(false);
    // Left on purpose (README, Tearing down): the known_hosts file (its entries are keyed by instance id, which Google
    // never reuses; the ssh double records none) and the empty upload locks.
    const stateDir = join(p.root, ".infra");
    expect(existsSync(join(stateDir, "known_hosts", "infra"))).toBe(true);
    expect(readdirSync(join(stateDir, "locks"))).toEqual([`upload-${hashOf(image)}`]);
    expect(p.activations()).toHaveLength(2);
    // A second destroy finds nothing to do.
    expect((await p.plan(["-destroy"])).exitCode).toBe(0);

    // bootstrap (local state): the state bucket has prevent_destroy, so Terraform refuses the whole destroy plan.
    const gcs = parseSettings({ ...p.settings, backend: { type: "gcs", bucket: "test-project-tfstate" } }, "test");
    const bootstrap = rehearsalConfig(JSON.parse(Testing.synth(new BootstrapStack(Testing.app() as App, "bootstrap", { settings: gcs }))));
    const dir = join(p.root, ".infra", "rehearsal", "bootstrap");
    mkdirSync(dir);
    writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(bootstrap.config));
    for (const args of [["init"], ["apply", "-auto-approve"]]) expect((await terraform([...args, "-no-color"], { dir, env: p.env })).exitCode).toBe(0);
    const kept = await terraform(["plan", "-destroy", "-no-color"], { dir, env: p.env });
    expect(kept.exitCode).toBe(1);
    expect(kept.text).toMatch(/Instance cannot be destroyed[\s\S]*google_storage_bucket__StateBucket has\s+lifecycle.prevent_destroy set/);
  }, TIMEOUT);
});
