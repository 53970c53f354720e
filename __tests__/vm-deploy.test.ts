/** Hosts: the VM construct, the DeployRs step, and its local-exec run for real. */
import { testWithTools } from "./helpers/tools.js";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { execa } from "execa";
import { join } from "node:path";
import { ComputeFirewall } from "@cdktf/provider-google/lib/compute-firewall/index.js";
import { resolveWithNix } from "../lib/nix.js";
import type { Settings } from "../lib/settings.js";
import { localExecs, type LocalExec, runLocalExec } from "./helpers/local-exec.js";
import { describeWithNix, DOUBLES, fixtureFlake, type FixtureFlake, NIX_ENV } from "./helpers/nix.js";
import { settings } from "./helpers/settings.js";
import { hclFor, resource, resources, staticResolved, synthStack } from "./helpers/stack.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example";
const host = (extra: Record<string, unknown> = {}) => ({ nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: [KEY], ...extra });
const warningsOf = (s: Settings) =>
  synthStack(s, staticResolved(s)).stack.node.findAll().flatMap((c) => c.node.metadata.filter((m) => m.type === "@cdktf/warn").map((m) => m.data));

describe("VM and deploy synthesis", () => {
  testWithTools(["terraform"], "HCL snapshot of a host", () => {
    const s = settings({ hosts: { vm: host() } });
    expect(hclFor(synthStack(s, staticResolved(s)).stack)).toMatchSnapshot();
  });

  test("a dedicated service account with only log and metric writer roles", () => {
    const s = settings({ hosts: { vm: host() } });
    const { json } = synthStack(s, staticResolved(s));
    expect(resource(json, "google_service_account", "vm-vm").account_id).toBe("host-vm");
    expect(Object.values(resources(json, "google_project_iam_member")).map((m) => m.role).sort()).toEqual(["roles/logging.logWriter", "roles/monitoring.metricWriter"]);
    const instance = resource(json, "google_compute_instance", "vm-vm");
    expect(instance.service_account.email).toMatch(/^\$\{google_service_account\.vm-vm_ServiceAccount_\w+\.email\}$/);
    // The account's roles bound what the VM may do; the scope must not filter them away.
    expect(instance.service_account.scopes).toEqual(["cloud-platform"]);
  });

  test("SSH is closed to the internet by default: only IAP's range, only this host's account", () => {
    const s = settings({ hosts: { vm: host() } });
    const { json } = synthStack(s, staticResolved(s));
    expect(json).toHaveResourceWithProperties(ComputeFirewall, { source_ranges: ["35.235.240.0/20"], direction: "INGRESS" });
    expect(json).not.toContain("0.0.0.0/0");
    // Without a target the rule would open port 22 on every VM of the network.
    expect(resource(json, "google_compute_firewall", "vm-vm").target_service_accounts).toEqual([
      expect.stringMatching(/^\$\{google_service_account\.vm-vm_ServiceAccount_\w+\.email\}$/),
    ]);
    const deploy = localExecs(resource(json, "null_resource", "vm-deploy"))[0];
    expect(deploy.environment.DEPLOY_CONNECT).toBe("iap");
    expect(deploy.environment.DEPLOY_HOST).toBe("vm");
  });

  test("sshSourceRanges opens direct SSH; the whole internet only when written, and then synth warns", () => {
    const s = settings({ hosts: { vm: host({ sshSourceRanges: ["203.0.113.0/24"] }) } });
    const { json } = synthStack(s, staticResolved(s));
    expect(resource(json, "google_compute_firewall", "vm-vm").source_ranges).toEqual(["203.0.113.0/24"]);
    const deploy = localExecs(resource(json, "null_resource", "vm-deploy"))[0];
    expect(deploy.environment.DEPLOY_CONNECT).toBe("direct");
    expect(deploy.environment.DEPLOY_HOST).toMatch(/^\$\{google_compute_instance\.vm-vm_Instance_\w+\.network_interface\[0\]\.access_config\[0\]\.nat_ip\}$/);
    expect(resource(json, "google_compute_instance", "vm-vm").network_interface[0].access_config).toEqual([{}]);
    expect(warningsOf(settings({ hosts: { vm: host({ sshSourceRanges: ["203.0.113.0/24"], network: "data" }) } }))).toEqual([]);
    const warned = (sshSourceRanges: string[]) => warningsOf(settings({ hosts: { vm: host({ sshSourceRanges, network: "data" }) } }));
    expect(warned(["0.0.0.0/0"])).toEqual(['host "vm" accepts SSH from the whole internet (sshSourceRanges 0.0.0.0/0)']);
    // However written: halves, any address with /0, a large share.
    expect(warned(["0.0.0.0/1", "128.0.0.0/1"])).toEqual(['host "vm" accepts SSH from the whole internet (sshSourceRanges 0.0.0.0/1, 128.0.0.0/1)']);
    expect(warned(["1.2.3.4/0"])).toEqual(['host "vm" accepts SSH from the whole internet (sshSourceRanges 1.2.3.4/0)']);
    expect(warned(["64.0.0.0/4"])).toEqual(['host "vm" accepts SSH from 1/16 of the internet (sshSourceRanges 64.0.0.0/4)']);
    // Private blocks are no share of the internet.
    expect(warned(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])).toEqual([]);
  });

  test("with recreateOnImageChange, the VM's name follows its image's name: another family of the same digest is a new VM too", () => {
    // The image reference replaces the VM (ForceNew); created first beside the old one, a shared name would be a 409.
    const name = (images: Record<string, { nixosConfiguration: string; family: string }>, image: string) => {
      const s = settings({ images, hosts: { vm: host({ recreateOnImageChange: true, image }) } });
      return resource(synthStack(s, staticResolved(s)).json, "google_compute_instance", "vm-vm").name;
    };
    const base = { nixosConfiguration: "gce-base", family: "nixos-base" };
    const first = name({ base }, "base");
    expect(name({ base: { ...base, family: "nixos-renamed" } }, "base")).not.toBe(first);
    expect(name({ base, twin: { ...base, family: "nixos-twin" } }, "twin")).not.toBe(first);
  });

  test("no external IP by default; one on the default network warns about its default-allow-ssh rule", () => {
    const s = settings({ hosts: { vm: host() } });
    expect(resource(synthStack(s, staticResolved(s)).json, "google_compute_instance", "vm-vm").network_interface[0].access_config).toEqual([]);
    expect(warningsOf(s)).toEqual([]);
    expect(warningsOf(settings({ hosts: { vm: host({ externalIp: true }) } }))).toEqual([
      'host "vm" has an external IP on the "default" network, whose default-allow-ssh rule (if not deleted) admits SSH from anywhere; use a dedicated network',
    ]);
  });

  test("public keys reach the deploy user through metadata, the only way in (no project keys, no serial console); a host without keys warns", () => {
    const s = settings({ hosts: { vm: host() } });
    const metadata = resource(synthStack(s, staticResolved(s)).json, "google_compute_instance", "vm-vm").metadata;
    expect(metadata).toEqual({ "ssh-keys": `deploy:${KEY}`, "enable-oslogin": "FALSE", "block-project-ssh-keys": "TRUE", "serial-port-enable": "FALSE" });
    expect(warningsOf(settings({ hosts: { vm: host({ sshKeys: [] }) } }))).toEqual(['host "vm" has no sshKeys: its deploy cannot log in as "deploy"']);
  });

  test("the image is only the first boot unless recreateOnImageChange; deletion protection is a setting", () => {
    const s = settings({ hosts: { vm: host({ deletionProtection: true }), pet: host({ recreateOnImageChange: true }) } });
    const { json } = synthStack(s, staticResolved(s));
    const vm = resource(json, "google_compute_instance", "vm-vm");
    const pet = resource(json, "google_compute_instance", "pet-vm");
    expect(vm.lifecycle).toEqual({ ignore_changes: ["boot_disk[0].initialize_params[0].image", "boot_disk[0].initialize_params[0].architecture"] });
    expect(vm.deletion_protection).toBe(true);
    // The new VM is created beside the old one, so it needs a name of its own.
    expect(pet.lifecycle).toEqual({ create_before_destroy: true, ignore_changes: ["boot_disk[0].initialize_params[0].architecture"] });
    expect(pet.name).toMatch(/^pet-[0-9a-f]{6}$/);
    expect(vm.name).toBe("vm");
    expect(pet.deletion_protection).toBe(false);
    expect(vm.boot_disk.initialize_params.image).toMatch(/^\$\{google_compute_image\.base-image_Image_\w+\.self_link\}$/);
  });

  test("the boot disk's architecture follows system (Google refuses an Arm machine type with a disk it takes for x86)", () => {
    const architecture = (s: ReturnType<typeof settings>) =>
      resource(synthStack(s, staticResolved(s)).json, "google_compute_instance", "vm-vm").boot_disk.initialize_params.architecture;
    expect(architecture(settings({ hosts: { vm: host() } }))).toBe("X86_64");
    const arm = settings({
      system: "aarch64-linux",
      images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["GVNIC", "UEFI_COMPATIBLE"] } },
      hosts: { vm: host({ machineType: "t2a-standard-1" }) },
    });
    expect(architecture(arm)).toBe("ARM64");
  });

  test("several hosts share one image, each with its own instance, firewall, service account and deploy step", () => {
    const s = settings({ hosts: { a: host(), b: host({ nixosConfiguration: "worker" }) } });
    const { json } = synthStack(s, staticResolved(s));
    for (const type of ["google_compute_instance", "google_compute_firewall", "google_service_account", "null_resource"]) {
      const ids = Object.keys(resources(json, type));
      expect(ids.filter((id) => id.startsWith("a-"))).toHaveLength(1);
      expect(ids.filter((id) => id.startsWith("b-"))).toHaveLength(1);
    }
    expect(Object.keys(resources(json, "google_compute_image"))).toHaveLength(1);
  });

  test("the deploy step is triggered by the planned system and the instance id, and gets values through environment", () => {
    const s = settings({ hosts: { vm: host() } });
    const resolved = staticResolved(s);
    const deployResource = resource(synthStack(s, resolved).json, "null_resource", "vm-deploy");
    expect(deployResource.triggers).toEqual({
      toplevel: resolved.hosts.vm.toplevel,
      instance_id: expect.stringMatching(/^\$\{google_compute_instance\.vm-vm_Instance_\w+\.instance_id\}$/),
    });
    expect(deployResource.depends_on).toHaveLength(2);
    const [deploy] = localExecs(deployResource);
    expect(deploy.command).toBe("constructs/deploy-rs.sh");
    expect(deploy.environment).toMatchObject({
      DEPLOY_FLAKE: ".",
      DEPLOY_NODE: "vm",
      DEPLOY_CONFIGURATION: "vm",
      DEPLOY_RS_INSTALLABLE: ".#deploy-rs",
      DEPLOY_EXPECTED_SYSTEM: resolved.hosts.vm.toplevel,
      DEPLOY_KNOWN_HOSTS: ".infra/known_hosts/infra",
      DEPLOY_WAIT_SECONDS: "300",
      DEPLOY_EXPECTED_BOOT: "bios",
      DEPLOY_INSTANCE_ADDRESS: expect.stringMatching(/^google_compute_instance\.vm-vm_Instance_\w+$/),
    });
    // The address named in the boot-mode refusal is the instance's, as Terraform knows it.
    expect(deploy.environment.DEPLOY_INSTANCE_ADDRESS).toBe(`google_compute_instance.${Object.keys(resources(synthStack(s, resolved).json, "google_compute_instance"))[0]}`);
  });

  test("bad host input gives clear errors from the settings (the one place these rules live)", () => {
    expect(() => settings({ hosts: { vm: host({ externalIp: false, sshSourceRanges: ["203.0.113.0/24"] }) } })).toThrow(
      "hosts.vm.externalIp: is false, but sshSourceRanges deploys over the external IP",
    );
    expect(() => settings({ hosts: { vm: host({ sshSourceRanges: [] }) } })).toThrow("hosts.vm.sshSourceRanges: is empty");
  });
});

describeWithNix(`hosts with real Nix`, () => {
  let fixture: FixtureFlake;
  beforeEach(() => {
    fixture = fixtureFlake();
    process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
  });
  afterEach(() => fixture.cleanup());

  const synth = async (extra: Record<string, unknown> = {}) => {
    const s = settings({ flake: fixture.ref, hosts: { a: host(extra), b: host({ nixosConfiguration: "worker", ...extra }) } });
    return synthStack(s, await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined })).json;
  };

  test("a services-only change to one host changes only that host's deploy resource", async () => {
    const before = await synth();
    const inputs = fixture.readInputs();
    inputs.configurations.worker.services = "pipeline v2";
    fixture.writeInputs(inputs);
    const after = await synth();
    const changed = (type: string) =>
      Object.keys({ ...resources(before, type), ...resources(after, type) }).filter(
        (id) => JSON.stringify(resources(before, type)[id]) !== JSON.stringify(resources(after, type)[id]),
      );
    expect(changed("null_resource")).toEqual([expect.stringMatching(/^b-deploy_Deploy_/)]);
    for (const type of ["google_compute_instance", "google_compute_image", "google_compute_firewall"]) {
      expect(changed(type)).toEqual([]);
    }
  });

  test("an image change leaves instances in place by default, and replaces them with recreateOnImageChange", async () => {
    for (const recreate of [false, true]) {
      const before = await synth({ recreateOnImageChange: recreate });
      const inputs = fixture.readInputs();
      inputs.configurations["gce-base"].image = `base ${recreate}`;
      fixture.writeInputs(inputs);
      const after = await synth({ recreateOnImageChange: recreate });
      const [oldImage, newImage] = [before, after].map((j) => resource(j, "google_compute_image", "base-image").name);
      expect(newImage).not.toBe(oldImage);
      // The instance refers to the image's self_link, which changes with the name at apply.
      // ignore_changes is what keeps Terraform from replacing the instance for it.
      const [oldInstance, instance] = [before, after].map((j) => resource(j, "google_compute_instance", "a-vm"));
      expect(instance.boot_disk.initialize_params.image).toMatch(/google_compute_image\.base-image_Image_\w+\.self_link/);
      if (recreate) {
        // Created beside the old VM, under a new name, before the old one goes.
        expect(instance.lifecycle).toMatchObject({ create_before_destroy: true });
        expect(instance.name).not.toBe(oldInstance.name);
      } else {
        expect(instance.lifecycle.ignore_changes).toContain("boot_disk[0].initialize_params[0].image");
        expect(instance.name).toBe(oldInstance.name);
      }
    }
  });

  test("with recreateOnImageChange, a disk size or type change also gives the new VM a name of its own", async () => {
    const name = async (extra: Record<string, unknown>) => resource(await synth(extra), "google_compute_instance", "a-vm").name;
    // Both replace the VM (ForceNew in the provider); created first beside the old one, a shared name would be a 409.
    const base = await name({ recreateOnImageChange: true });
    expect(base).toMatch(/^a-[0-9a-f]{6}$/);
    expect(await name({ recreateOnImageChange: true, diskSizeGb: 40 })).not.toBe(base);
    expect(await name({ recreateOnImageChange: true, diskType: "pd-ssd" })).not.toBe(base);
    expect(await name({ recreateOnImageChange: true, machineType: "e2-medium" })).toBe(base);
    // Without it, the VM is replaced in place (destroyed first): the name stays the host id.
    expect(await name({ diskSizeGb: 40 })).toBe("a");
  });

  describe("the deploy step's local-exec, run by bash", () => {
    let server: Server | undefined;
    let recorder: string;
    let port: number;
    beforeEach(async () => {
      recorder = mkdtempSync(join(tmpdir(), "recorder-"));
      server = createServer((socket) => socket.end("SSH-2.0-loopback-stand-in\r\n"));
      await new Promise<void>((ok) => server!.listen(0, "127.0.0.1", ok));
      port = (server.address() as { port: number }).port;
    });
    afterEach(async () => {
      await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
      rmSync(recorder, { recursive: true, force: true });
    });

    /** The host runs its image's system again, so the next run deploys (a host on the planned system is left alone). */
    const imageSystemAgain = () => {
      for (const file of [join(recorder, "hosts", "a-4242", "current-system"), join(recorder, "current-system")]) rmSync(file, { force: true });
    };
    /** What Terraform substitutes for the references at apply time. */
    const applied = (exec: LocalExec, address = "127.0.0.1"): LocalExec => ({
      ...exec,
      environment: Object.fromEntries(
        Object.entries(exec.environment).map(([k, v]) => [
          k,
          v
            .replace(/\$\{google_compute_instance\.[\w-]+\.network_interface\[0\]\.access_config\[0\]\.nat_ip\}/, address)
            .replace(/\$\{google_compute_instance\.[\w-]+\.instance_id\}/, "4242")
            .replace(/\$\{google_compute_instance\.[\w-]+\.name\}/, "a"),
        ]),
      ),
    });
    const deployExec = async (flake: string, stateDir: string, guestOsFeatures?: Array<"UEFI_COMPATIBLE" | "VIRTIO_SCSI_MULTIQUEUE">) => {
      const s = settings({
        flake,
        stateDir,
        deploy: { sshWaitSeconds: 1 } as never,
        ...(guestOsFeatures ? { images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures } } } : {}),
        hosts: { a: host({ sshSourceRanges: ["127.0.0.1/32"] }) },
      });
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
      const [exec] = localExecs(resource(synthStack(s, resolved).json, "null_resource", "a-deploy"));
      return { exec: applied(exec), toplevel: resolved.hosts.a.toplevel };
    };
    const env = (extra: Record<string, string> = {}) => ({
      ...NIX_ENV,
      RECORDER_DIR: recorder,
      DEPLOY_SSH_PORT: String(port),
      PATH: `${join(DOUBLES, "host-ssh")}:${process.env.PATH}`,
      ...extra,
    });
    const argv = (file: string) => readFileSync(join(recorder, file), "utf8").split("\0").slice(0, -1);

    test("waits for SSH, runs the flake's deploy-rs with the exact argv, and checks the activated system", async () => {
      const { exec, toplevel } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      const run = await runLocalExec(exec, env());
      expect(run.all).toContain(`deploy-rs[a]: active: ${toplevel}`);
      expect(run.exitCode).toBe(0);
      const args = argv("deploy.argv");
      expect(args.slice(0, 6)).toEqual(["--skip-checks", "--hostname", "127.0.0.1", "--ssh-user", "deploy", "--ssh-opts"]);
      expect(args[6]).toMatch(new RegExp(`^-F ${tmpdir()}/deploy-rs\\.\\w+/ssh_config$`));
      expect(args.slice(7)).toEqual([
        "--magic-rollback", "true", "--auto-rollback", "true", "--fast-connection", "true",
        "--confirm-timeout", "30", "--activation-timeout", "240", `${fixture.ref}#a`,
      ]);
      const sshConfig = readFileSync(join(recorder, "ssh_config"), "utf8");
      expect(sshConfig).toContain(`UserKnownHostsFile "${join(fixture.dir, "state", "known_hosts", "infra")}"`);
      expect(sshConfig).toContain("StrictHostKeyChecking accept-new");
      expect(sshConfig).toContain("HostKeyAlias a-4242");
      expect(sshConfig).not.toContain("ProxyCommand");
      expect(sshConfig).not.toMatch(/StrictHostKeyChecking no/i);
      expect(argv("ssh.argv")).toEqual(["-F", args[6].slice(3), "127.0.0.1", "readlink", "-f", "/run/current-system"]);
    });

    test("its temporary directory is made in $TMPDIR, or in /tmp when $TMPDIR has a space (deploy-rs splits --ssh-opts on spaces)", async () => {
      const { exec } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      for (const [tmp, expected] of [
        [join(fixture.dir, "tmp"), join(fixture.dir, "tmp")],
        [join(fixture.dir, "my tmp"), "/tmp"],
      ]) {
        mkdirSync(tmp, { recursive: true });
        imageSystemAgain();
        const run = await runLocalExec(exec, env({ TMPDIR: tmp }));
        expect(run.exitCode).toBe(0);
        const sshOpts = argv("deploy.argv")[6];
        expect(sshOpts.startsWith(`-F ${expected}/deploy-rs.`)).toBe(true);
        expect(existsSync(sshOpts.slice(3))).toBe(false);
      }
    });

    test("a flake changed after synth is refused before SSH and before deploy-rs runs", async () => {
      const { exec, toplevel } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      const inputs = fixture.readInputs();
      inputs.configurations.vm.services = "changed after synth";
      fixture.writeInputs(inputs);
      const run = await runLocalExec(exec, env());
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain(`deploy-rs[a]: the flake changed after synth; run synth/diff again (planned ${toplevel}, flake now gives /nix/store/`);
      expect(run.all).toContain("nothing was deployed");
      expect(run.all).not.toContain("waiting up to");
      expect(existsSync(join(recorder, "deploy.argv"))).toBe(false);
      expect(existsSync(join(recorder, "ssh.argv"))).toBe(false);
    });

    test("a host already on the planned system is left alone only when that system is also its boot default (system profile) and no unit failed", async () => {
      const { exec, toplevel } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      const hostDir = join(recorder, "hosts", "a-4242");
      mkdirSync(hostDir, { recursive: true });
      writeFileSync(join(hostDir, "current-system"), `${toplevel}\n`);
      // Activated with `switch-to-configuration test` (or a rollback whose switch back failed): the next boot runs another system.
      writeFileSync(join(hostDir, "profile"), "/nix/store/00000000000000000000000000000000-previous-system\n");
      const run = await runLocalExec(exec, env());
      expect(run.exitCode).toBe(0);
      expect(existsSync(join(recorder, "deploy.argv"))).toBe(true);
      rmSync(join(recorder, "deploy.argv"));
      rmSync(join(hostDir, "profile"));
      // A unit failed (say its secrets fetch, run at first boot before the grant took effect): deploy-rs's activation reports it.
      writeFileSync(join(hostDir, "systemd-state"), "degraded\n");
      expect((await runLocalExec(exec, env())).exitCode).toBe(0);
      expect(existsSync(join(recorder, "deploy.argv"))).toBe(true);
      rmSync(join(recorder, "deploy.argv"));
      rmSync(join(hostDir, "systemd-state"));
      const again = await runLocalExec(exec, env());
      expect(again.all).toContain(`deploy-rs[a]: already active: ${toplevel}; nothing to deploy`);
      expect(existsSync(join(recorder, "deploy.argv"))).toBe(false);
    });

    test("a host that booted the other way than its configuration is built for (a kept VM whose image's UEFI_COMPATIBLE changed) is refused before deploy-rs runs", async () => {
      // The ssh double's host "a-4242" (HostKeyAlias: instance and id) booted as hosts/a-4242/firmware says.
      const booted = (firmware: string) => {
        mkdirSync(join(recorder, "hosts", "a-4242"), { recursive: true });
        writeFileSync(join(recorder, "hosts", "a-4242", "firmware"), `${firmware}\n`);
      };
      for (const [features, expected, firmware, names] of [
        [undefined, "bios", "efi", ["UEFI", "BIOS"]],
        [["VIRTIO_SCSI_MULTIQUEUE", "UEFI_COMPATIBLE"], "efi", "bios", ["BIOS", "UEFI"]],
      ] as const) {
        const { exec } = await deployExec(fixture.ref, join(fixture.dir, "state"), features ? [...features] : undefined);
        expect(exec.environment.DEPLOY_EXPECTED_BOOT).toBe(expected);
        booted(firmware);
        const run = await runLocalExec(exec, env());
        expect(run.exitCode).toBe(1);
        const refusal = run.all.split("\n").filter((line) => line.includes("booted with"));
        expect(refusal).toEqual([
          `deploy-rs[a]: host a booted with ${names[0]}, but its configuration vm is built for ${names[1]} (its image's UEFI_COMPATIBLE differs from the one the VM was created from); replace the VM: terraform apply -replace='${exec.environment.DEPLOY_INSTANCE_ADDRESS}', or set hosts.a.recreateOnImageChange; nothing was deployed`,
        ]);
        expect(exec.environment.DEPLOY_INSTANCE_ADDRESS).toMatch(/^google_compute_instance\.a-vm_Instance_\w+$/);
        expect(existsSync(join(recorder, "deploy.argv"))).toBe(false);
        expect(argv("ssh.argv").slice(2)).toEqual(["127.0.0.1", "test", "-d", "/sys/firmware/efi"]);

        // The same host booted the way its configuration is built for: deployed.
        booted(expected);
        imageSystemAgain();
        const matching = await runLocalExec(exec, env());
        expect(matching.exitCode).toBe(0);
        expect(matching.all).not.toContain("booted with");
        expect(existsSync(join(recorder, "deploy.argv"))).toBe(true);
        rmSync(join(recorder, "deploy.argv"));
      }
    });

    test("a host that cannot say how it booted is not deployed to", async () => {
      const { exec } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      // The ssh double answers the wait (over the banner) but then the host goes: ssh exits 255.
      writeFileSync(join(recorder, "ssh.down"), "");
      const run = await runLocalExec(exec, env());
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain("deploy-rs[a]: could not ask 127.0.0.1 how it booted (ssh failed, see above); nothing was deployed");
      expect(existsSync(join(recorder, "deploy.argv"))).toBe(false);
    });

    test("a port that answers with something other than an SSH banner is not SSH: the wait times out", async () => {
      const { exec } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      await new Promise((ok) => server!.close(ok));
      server = createServer((socket) => socket.on("error", () => undefined).end("HTTP/1.0 400 Bad Request\r\n\r\n"));
      await new Promise<void>((ok) => server!.listen(port, "127.0.0.1", ok));
      const run = await runLocalExec(exec, env());
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain(`deploy-rs[a]: SSH did not answer on 127.0.0.1:${port} within 1s (deploy.sshWaitSeconds; last answer: not an SSH banner: HTTP/1.0 400 Bad Request)`);
      expect(existsSync(join(recorder, "deploy.argv"))).toBe(false);
    });

    test("a wait that times out fails with a clear message", async () => {
      const { exec } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      await new Promise((ok) => server!.close(ok));
      server = undefined;
      const started = Date.now();
      const run = await runLocalExec(exec, env());
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain(`deploy-rs[a]: SSH did not answer on 127.0.0.1:${port} within 1s (deploy.sshWaitSeconds; last answer: probe: connect: Connection refused`);
      expect(Date.now() - started).toBeLessThan(20000);
    });

    test("a deploy that rolled back fails, though deploy-rs exited 0", async () => {
      const { exec, toplevel } = await deployExec(fixture.ref, join(fixture.dir, "state"));
      const run = await runLocalExec(exec, env({ RECORDER_ROLLBACK: "1" }));
      expect(run.all).toContain("deploy-rs recorder: recorded");
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain(`the host runs /nix/store/00000000000000000000000000000000-previous-system, not ${toplevel}: the deploy was rolled back`);
    });

    test("the deploy-rs double activates what the flake's deploy.nodes gives, never the planned path it is handed: the host runs its toplevel, its profile is deploy-rs's wrapper", async () => {
      const built = await execa("nix", ["build", "--json", "--no-link", `${fixture.ref}#deploy-rs`], { env: NIX_ENV });
      const deploy = join(JSON.parse(built.stdout)[0].outputs.out, "bin", "deploy");
      const eval_ = async (attribute: string) => (await execa("nix", ["eval", "--raw", `${fixture.ref}#${attribute}`], { env: NIX_ENV })).stdout;
      const nodePath = await eval_("deploy.nodes.b.profiles.system.path");
      const toplevel = await eval_("nixosConfigurations.worker.config.system.build.toplevel");
      const run = await execa(deploy, ["--hostname", "10.0.0.2", `${fixture.ref}#b`], {
        env: { ...NIX_ENV, RECORDER_DIR: recorder, DEPLOY_EXPECTED_SYSTEM: "/nix/store/00000000000000000000000000000000-planned" },
        reject: false,
      });
      expect(run.exitCode).toBe(0);
      expect(nodePath).toMatch(/-activatable-nixos-system-worker$/);
      const host = join(recorder, "hosts", "10.0.0.2");
      expect(readFileSync(join(host, "current-system"), "utf8")).toBe(`${toplevel}\n`);
      expect(readFileSync(join(host, "profile"), "utf8")).toBe(`${nodePath}\n`);
      expect(readFileSync(join(recorder, "activations.log"), "utf8")).toBe(`b ${toplevel}\n`);
      expect(existsSync(nodePath)).toBe(true);
    });

    test("hostile values in the flake path reach deploy-rs verbatim; a hostile state dir is refused by the settings", async () => {
      // Nix's URL syntax has no literal spaces in flake paths. One name breaks any quoting around it; the
      // other is well-formed shell, so a step that lets a shell re-read it (eval, bash -c) runs `touch pwned`.
      for (const hostileName of [`fx;'q"dq$(id)`, "fx$(touch$IFS'pwned')"]) {
        const hostileDir = join(fixture.dir, hostileName);
        mkdirSync(hostileDir);
        for (const f of ["flake.nix", "inputs.json"]) copyFileSync(join(fixture.dir, f), join(hostileDir, f));
        const flake = `path:${hostileDir}`;
        const stateDir = join(fixture.dir, "state.dir_-1");
        const { exec } = await deployExec(flake, stateDir);
        expect(exec.environment.DEPLOY_FLAKE).toBe(flake);
        imageSystemAgain();
        const run = await runLocalExec(exec, env());
        expect(run.exitCode).toBe(0);
        expect(argv("deploy.argv").at(-1)).toBe(`${flake}#a`);
        expect(readFileSync(join(recorder, "ssh_config"), "utf8")).toContain(`UserKnownHostsFile "${join(stateDir, "known_hosts", "infra")}"`);
        // The step runs from the project root (process.cwd() here).
        expect([hostileName, existsSync(join(process.cwd(), "pwned")), existsSync(join(fixture.dir, "pwned"))]).toEqual([hostileName, false, false]);
      }
      expect(() => settings({ stateDir: join(fixture.dir, "state dir ;'$(touch pwned)`id`${HOME}%{x}") })).toThrow(/^test: 1 problem\(s\)\n  stateDir: must be a directory path/);
    });
  });
});
