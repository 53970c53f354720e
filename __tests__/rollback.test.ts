/** npm run rollback: the real script and bash, with the ssh double standing in for the host. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { localExecs } from "./helpers/local-exec.js";
import { DOUBLES, REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";
import { resource, staticResolved, synthStack } from "./helpers/stack.js";
import { testWithTools } from "./helpers/tools.js";
import { parseSettings } from "../lib/settings.js";

describe("npm run rollback", () => {
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), "rollback-"));
    const s = baseSettings({ stateDir: join(work, "state") });
    s.hosts!.vm.sshSourceRanges = ["203.0.113.0/24"];
    writeFileSync(join(work, "infra.json"), JSON.stringify(s));
    writeFileSync(join(work, "current-system"), "/nix/store/11111111111111111111111111111111-nixos-system-vm\n");
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  const rollbackWith = (env: Record<string, string>, ...args: string[]) =>
    execa("node", ["--import", "tsx", "bin/rollback.ts", ...args], {
      cwd: REPO_ROOT,
      reject: false,
      all: true,
      env: { INFRA_CONFIG: join(work, "infra.json"), RECORDER_DIR: work, PATH: `${join(DOUBLES, "host-ssh")}:${process.env.PATH}`, ...env },
    });
  const rollback = (...args: string[]) => rollbackWith({}, ...args);

  test("switches the host to its previous generation over the deploy SSH path and reports it", async () => {
    const run = await rollback("vm", "--address", "203.0.113.7", "--instance-id", "99");
    expect(run.all).toContain("rollback[203.0.113.7]: now active: /nix/store/00000000000000000000000000000000-previous-system");
    expect(run.exitCode).toBe(0);
    expect(readFileSync(join(work, "ssh.log"), "utf8").trim().split("\n")).toEqual([
      "sudo nix-env --profile /nix/var/nix/profiles/system --list-generations",
      "readlink -f /run/current-system",
      "sudo nix-env --profile /nix/var/nix/profiles/system --rollback && sudo /nix/var/nix/profiles/system/bin/switch-to-configuration switch",
      "readlink -f /run/current-system",
    ]);
    const argv = readFileSync(join(work, "ssh.argv"), "utf8").split("\0");
    expect(argv[0]).toBe("-F");
    // Each session unshared, so gcloud's reason for a failed tunnel reaches the user (its own test below).
    expect(argv.slice(2, 5)).toEqual(["-o", "ControlPath=none", "203.0.113.7"]);
    // The host key the deploy recorded is the one the rollback checks: one known_hosts file, the deploy step's.
    const s = parseSettings(JSON.parse(readFileSync(join(work, "infra.json"), "utf8")), "infra.json");
    const [deploy] = localExecs(resource(synthStack(s, staticResolved(s)).json, "null_resource", "vm-deploy"));
    expect(existsSync(deploy.environment.DEPLOY_KNOWN_HOSTS)).toBe(true);
    expect(readdirSync(join(work, "state", "known_hosts"))).toEqual(["infra"]);
  });

  test("a host with nothing to roll back to fails, naming the system it still runs", async () => {
    const run = await rollbackWith({ HOST_DOUBLE_NO_PREVIOUS: "1" }, "vm", "--address", "203.0.113.7", "--instance-id", "99");
    expect(run.exitCode).toBe(1);
    expect(run.all).toContain("rollback[203.0.113.7]: the host still runs /nix/store/11111111111111111111111111111111-nixos-system-vm; nothing was rolled back");
    expect(run.all).not.toContain("now active");
  });

  test("a host that booted the other way than its configuration now says still rolls back: the firmware is not the rollback's question", async () => {
    // The state the deploy step leaves when it refuses a kept VM moved to a UEFI_COMPATIBLE image:
    // the settings give UEFI, the VM booted BIOS, and every generation on it was admitted under BIOS.
    const s = baseSettings({ stateDir: join(work, "state") });
    s.hosts!.vm.sshSourceRanges = ["203.0.113.0/24"];
    s.images!.base.guestOsFeatures = ["VIRTIO_SCSI_MULTIQUEUE", "UEFI_COMPATIBLE"];
    writeFileSync(join(work, "infra.json"), JSON.stringify(s));
    mkdirSync(join(work, "hosts", "vm-99"), { recursive: true });
    writeFileSync(join(work, "hosts", "vm-99", "firmware"), "bios");
    const run = await rollback("vm", "--address", "203.0.113.7", "--instance-id", "99");
    expect(run.exitCode).toBe(0);
    expect(run.all).toContain("rollback[203.0.113.7]: now active: /nix/store/00000000000000000000000000000000-previous-system");
  });

  test("a host recreated on image change is reached under its current instance name (IAP)", async () => {
    const s = baseSettings({ stateDir: join(work, "state") });
    s.hosts!.vm.recreateOnImageChange = true;
    writeFileSync(join(work, "infra.json"), JSON.stringify(s));
    const run = await rollback("vm", "--instance-id", "99", "--instance-name", "vm-0a1b2c3d4e");
    expect(run.exitCode).toBe(0);
    expect(run.all).toContain("rollback[vm-0a1b2c3d4e]: now active:");
    expect(readFileSync(join(work, "ssh.argv"), "utf8").split("\0")[4]).toBe("vm-0a1b2c3d4e");
  });

  testWithTools(["ssh"], "a tunnel gcloud cannot open shows gcloud's reason, and the run ends with an error line (real ssh, IAP double)", async () => {
    writeFileSync(join(work, "infra.json"), JSON.stringify(baseSettings({ stateDir: join(work, "state") })));
    // Nothing listens on port 1: the double fails as gcloud does, with its reason on stderr.
    const run = await rollbackWith({ PATH: `${join(DOUBLES, "iap-gcloud")}:${process.env.PATH}`, IAP_DOUBLE_PORT: "1" }, "vm", "--instance-id", "99");
    expect(run.all).toContain("ERROR: (gcloud.compute.start-iap-tunnel) Error while connecting [4003: 'failed to connect to backend']");
    expect(run.all?.split("\n").at(-1)).toBe(`error: could not reach host "vm" over SSH through IAP (instance vm); the reason is on the lines above (gcloud's, then ssh's)`);
    expect(run.exitCode).toBe(1);
  });

  test("an --address that is not an IPv4 address or a DNS name, and an --instance-id that is not a number, are refused by name before ssh runs", async () => {
    const refused = await Promise.all([
      rollback("vm", "--address", "a b", "--instance-id", "99"),
      rollback("vm", "--address", "203.0.113.7", "--instance-id", "12a"),
    ]);
    expect(refused.map((r) => [r.exitCode, r.all])).toEqual([
      [1, 'error: --address "a b" is not an IPv4 address or a DNS name'],
      [1, 'error: --instance-id "12a" is not a number (the instance\'s id, as in output host-vm-instance-id)'],
    ]);
    expect(existsSync(join(work, "ssh.log"))).toBe(false);
    // A DNS name is an address too.
    expect((await rollback("vm", "--address", "vm.example.com", "--instance-id", "99")).exitCode).toBe(0);
  });

  test("a Terraform that is not on PATH is named, as the rehearsal names it, with the flags that make it unnecessary", async () => {
    const run = await rollbackWith({ TERRAFORM_BINARY_NAME: "tofu-not-installed" }, "vm");
    expect([run.exitCode, run.all]).toEqual([
      1,
      'error: TERRAFORM_BINARY_NAME is "tofu-not-installed", which is not on PATH; install it, or unset TERRAFORM_BINARY_NAME to run terraform; or pass --address IP --instance-id ID',
    ]);
  });

  test("an unknown host and missing outputs are named", async () => {
    const unknown = await rollback("web");
    expect(unknown.exitCode).toBe(1);
    expect(unknown.all).toBe('error: no host "web" in the settings (known: vm)');
    // A name every object has is not a host. (Arguments: cli.test.ts.)
    const inherited = await rollback("constructor", "--address", "203.0.113.7", "--instance-id", "99");
    expect([inherited.exitCode, inherited.all]).toEqual([1, 'error: no host "constructor" in the settings (known: vm)']);
  });
});
