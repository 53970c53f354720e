/**
 * The SSH model with real OpenSSH: the ssh_config that constructs/deploy-rs-ssh-config.sh
 * writes for deploys and rollbacks, against a real sshd on 127.0.0.1. IAP is
 * the one part played by a test double (gcloud), since Google's API cannot
 * be reached here.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { execa } from "execa";
import { DOUBLES, REPO_ROOT } from "./helpers/nix.js";
import { type Sshd, startSshd } from "./helpers/sshd.js";
import { freePort } from "./helpers/ports.js";
import { describeWithTools } from "./helpers/tools.js";


describeWithTools(["sshd", "ssh"], "SSH model with real ssh and sshd", () => {
  let sshd: Sshd;
  let work: string;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), "ssh-model-"));
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  const knownHosts = () => join(work, "state dir", "known_hosts", "infra");
  /** Runs the real ssh-config.sh, as deploy.sh and rollback.sh source it. */
  const sshConfig = async (vars: Record<string, string>, dir = mkdtempSync(join(work, "cfg-"))) => {
    const env = {
      DEPLOY_SSH_USER: sshd.user,
      DEPLOY_SSH_PORT: String(sshd.port),
      DEPLOY_PROJECT: "test-project",
      DEPLOY_ZONE: "europe-west1-b",
      DEPLOY_INSTANCE: "a",
      DEPLOY_INSTANCE_ID: "4242",
      DEPLOY_KNOWN_HOSTS: knownHosts(),
      ...vars,
    };
    await execa("bash", ["-c", 'work="$1"; source constructs/deploy-rs-ssh-config.sh', "ssh-config", dir], { cwd: REPO_ROOT, env });
    return join(dir, "ssh_config");
  };
  // Each call stands for a deploy of its own, which has its own $work and so its own shared connection.
  const ssh = (config: string, host: string, env: Record<string, string> = {}) =>
    execa("ssh", ["-F", config, "-o", "ControlPath=none", host, "echo connected as $(id -un)"], { env: { ...sshd.agentEnv, ...env }, reject: false });

  test("the host key is recorded on first contact, under an alias carrying the instance id, and enforced after", async () => {
    const config = await sshConfig({ DEPLOY_HOST: "127.0.0.1", DEPLOY_CONNECT: "direct" });
    const first = await ssh(config, "127.0.0.1");
    expect(first.stdout).toBe(`connected as ${sshd.user}`);
    expect(first.exitCode).toBe(0);
    const recorded = readFileSync(knownHosts(), "utf8").trim().split("\n");
    expect(recorded).toEqual([expect.stringMatching(/^a-4242 ssh-ed25519 /)]);
    expect((await ssh(config, "127.0.0.1")).exitCode).toBe(0);

    // The same instance presenting another key is refused, not re-learned.
    await sshd.rotateHostKey();
    const tampered = await ssh(config, "127.0.0.1");
    expect(tampered.exitCode).toBe(255);
    expect(tampered.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect(readFileSync(knownHosts(), "utf8").trim().split("\n")).toHaveLength(1);

    // A re-created VM has a new instance id: its new key is a new entry.
    const recreated = await sshConfig({ DEPLOY_HOST: "127.0.0.1", DEPLOY_CONNECT: "direct", DEPLOY_INSTANCE_ID: "4243" });
    expect((await ssh(recreated, "127.0.0.1")).exitCode).toBe(0);
    expect(readFileSync(knownHosts(), "utf8").trim().split("\n")).toEqual([
      expect.stringMatching(/^a-4242 /),
      expect.stringMatching(/^a-4243 ssh-ed25519 /),
    ]);
  });

  test("a work dir too long for a socket path: sessions are not shared, and ssh still connects (it fails on a ControlPath it cannot bind)", async () => {
    const dir = join(work, "d".repeat(100 - work.length - 1));
    mkdirSync(dir);
    const config = await sshConfig({ DEPLOY_HOST: "127.0.0.1", DEPLOY_CONNECT: "direct" }, dir);
    expect(readFileSync(config, "utf8")).not.toContain("ControlMaster");
    const run = await execa("ssh", ["-F", config, "127.0.0.1", "echo connected as $(id -un)"], { env: sshd.agentEnv, reject: false });
    expect(run.stdout).toBe(`connected as ${sshd.user}`);
  });

  test("through IAP, ssh reaches the instance by name with gcloud start-iap-tunnel as ProxyCommand", async () => {
    const config = await sshConfig({ DEPLOY_HOST: "a", DEPLOY_CONNECT: "iap", DEPLOY_SSH_PORT: "22" });
    expect(readFileSync(config, "utf8")).toContain(
      "ProxyCommand gcloud compute start-iap-tunnel a %p --listen-on-stdin --project=test-project --zone=europe-west1-b --verbosity=warning",
    );
    const run = await ssh(config, "a", {
      PATH: `${join(DOUBLES, "iap-gcloud")}:${process.env.PATH}`,
      RECORDER_DIR: work,
      IAP_DOUBLE_PORT: String(sshd.port),
    });
    expect(run.stdout).toBe(`connected as ${sshd.user}`);
    const calls = readFileSync(join(work, "gcloud.argv"), "utf8").trim().split("\n").map((l) => l.split("\0").slice(0, -1));
    expect(calls).toEqual([
      ["compute", "start-iap-tunnel", "a", "22", "--listen-on-stdin", "--project=test-project", "--zone=europe-west1-b", "--verbosity=warning"],
    ]);
  });

  /** The environment of the deploy step's SSH scripts for host "a" through the IAP tunnel double (recorded in recorderDir). */
  const iapHostEnv = (recorderDir: string, iapPort: number, extra: Record<string, string>) => ({
    ...sshd.agentEnv,
    PATH: `${join(DOUBLES, "iap-gcloud")}:${process.env.PATH}`,
    RECORDER_DIR: recorderDir,
    IAP_DOUBLE_PORT: String(iapPort),
    DEPLOY_NODE: "a",
    DEPLOY_HOST: "a",
    DEPLOY_CONNECT: "iap",
    DEPLOY_SSH_USER: sshd.user,
    DEPLOY_SSH_PORT: "22",
    DEPLOY_PROJECT: "test-project",
    DEPLOY_ZONE: "europe-west1-b",
    DEPLOY_INSTANCE: "a",
    DEPLOY_INSTANCE_ID: "7",
    DEPLOY_KNOWN_HOSTS: knownHosts(),
    ...extra,
  });

  test("a deploy's SSH sessions share one connection, so IAP starts one tunnel for them all (and one for the wait), closed at the end", async () => {
    // The sessions of deploy-rs.sh in order: the wait, the boot check, the "already active" check, deploy-rs's
    // own (copy, then activate beside its wait, then confirm), the final check of the active system; then ssh_close.
    const dir = mkdtempSync(join(work, "deploy-"));
    const deploy = (sshOptions: string) =>
      execa(
        "bash",
        [
          "-c",
          `set -euo pipefail; work="$1"; source constructs/deploy-rs-ssh-config.sh; source constructs/deploy-rs-ssh-wait.sh
          s() { ssh -F "$work/ssh_config" ${sshOptions} "$DEPLOY_HOST" "$@"; }
          wait_for_ssh; s test -d /; active=$(s 'readlink -f /; dirname /'); s true; s sleep 1 & s true; wait; s true; s readlink -f /
          [ -S "$work/mux" ] && echo shared; ssh_close; [ -S "$work/mux" ] || echo closed`,
          "deploy",
          dir,
        ],
        {
          cwd: REPO_ROOT,
          env: iapHostEnv(dir, sshd.port, { DEPLOY_WAIT_SECONDS: "10" }),
        },
      );
    const tunnels = () => readFileSync(join(dir, "gcloud.argv"), "utf8").trim().split("\n").length;
    // Without sharing (deploy("-o ControlPath=none")), each of the 8 sessions starts a tunnel.
    const shared = await deploy("");
    expect(shared.stdout).toBe("/\nshared\nclosed");
    expect(tunnels()).toBe(2);
    expect(readFileSync(join(dir, "ssh_config"), "utf8")).toContain(`ControlPath "${dir}/mux"`);
  }, 60000);

  test("the deploy's wait step answers through the IAP tunnel, and times out with a clear message", async () => {
    const dir = mkdtempSync(join(work, "wait-"));
    // reportSeconds "0": a progress line after every failed attempt, so one comes before the 3 s run out however
    // slowly the machine runs the attempts (at "1", a loaded machine reached the deadline first).
    const waitFor = (iapPort: number, seconds = "3", reportSeconds = "30") =>
      execa("bash", ["-c", 'set -euo pipefail; work="$1"; source constructs/deploy-rs-ssh-config.sh; source constructs/deploy-rs-ssh-wait.sh; wait_for_ssh', "wait", dir], {
        cwd: REPO_ROOT,
        reject: false,
        env: iapHostEnv(work, iapPort, { DEPLOY_WAIT_SECONDS: seconds, SSH_WAIT_REPORT_SECONDS: reportSeconds }),
      });
    const up = await waitFor(sshd.port);
    expect(up.stderr).toContain("deploy-rs[a]: SSH answers");
    expect(up.stderr).not.toContain("still waiting");
    expect(up.exitCode).toBe(0);
    // Down: a progress line while it waits, and the error says what the tunnel answered, on one line.
    const down = await waitFor(1, "3", "0");
    expect(down.exitCode).toBe(1);
    expect(down.stderr).toMatch(/deploy-rs\[a\]: still waiting for SSH \(\d+s of 3s; last answer: .*Connection refused.*\)\n/);
    const error = down.stderr.split("\n").find((line) => line.includes("did not answer"));
    expect(error).toMatch(/^deploy-rs\[a\]: SSH did not answer on a:22 within 3s \(deploy\.sshWaitSeconds; last answer: .*Connection refused.* \| Connection closed by .*\); check that the VM booted and the firewall admits this machine$/);
  });

  test("values ssh_config cannot carry are refused by name", async () => {
    const error = await sshConfig({ DEPLOY_HOST: "a b", DEPLOY_CONNECT: "direct" }).catch((e) => e);
    expect(error.exitCode).toBe(2);
    expect(error.stderr).toBe('ssh-config: DEPLOY_HOST="a b" is empty or has characters ssh_config cannot carry');
    // Every value that lands on a line of ssh_config: a newline would add a directive of its own.
    for (const name of ["DEPLOY_SSH_USER", "DEPLOY_SSH_PORT", "DEPLOY_PROJECT", "DEPLOY_ZONE", "DEPLOY_INSTANCE", "DEPLOY_INSTANCE_ID"]) {
      const refused = await sshConfig({ DEPLOY_HOST: "a", DEPLOY_CONNECT: "iap", [name]: "1\n  ProxyCommand touch /tmp/pwned" }).catch((e) => e);
      expect([name, refused.exitCode]).toEqual([name, 2]);
      expect(refused.stderr).toMatch(new RegExp(`^ssh-config: ${name}="1`));
    }
    for (const path of [join(work, 'known "hosts"'), join(work, "known\nhosts")]) {
      const refused = await sshConfig({ DEPLOY_HOST: "a", DEPLOY_CONNECT: "direct", DEPLOY_KNOWN_HOSTS: path }).catch((e) => e);
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(/^ssh-config: DEPLOY_KNOWN_HOSTS=".*" must be a path without double quotes or newlines$/s);
    }
  });

  test("ssh reads the options as meant: batch mode (CI has no one to answer a prompt), new host keys accepted under the instance alias", async () => {
    const config = await sshConfig({ DEPLOY_HOST: "127.0.0.1", DEPLOY_CONNECT: "direct" });
    // `ssh -G` prints the options ssh would use for this host, after reading the file.
    const options = (await execa("ssh", ["-G", "-F", config, "127.0.0.1"])).stdout.split("\n");
    expect(options).toEqual(
      expect.arrayContaining(["batchmode yes", "stricthostkeychecking accept-new", "hostkeyalias a-4242", `user ${sshd.user}`, `port ${sshd.port}`]),
    );
  });

  test("the deploy's wait step waits for a host that answers SSH only later (a VM still booting)", async () => {
    const dir = mkdtempSync(join(work, "wait-"));
    const port = await freePort();
    const waiting = execa("bash", ["-c", 'set -euo pipefail; work="$1"; source constructs/deploy-rs-ssh-config.sh; source constructs/deploy-rs-ssh-wait.sh; wait_for_ssh', "wait", dir], {
      cwd: REPO_ROOT,
      reject: false,
      env: {
        DEPLOY_NODE: "a",
        DEPLOY_HOST: "127.0.0.1",
        DEPLOY_CONNECT: "direct",
        DEPLOY_SSH_USER: "deploy",
        DEPLOY_SSH_PORT: String(port),
        DEPLOY_PROJECT: "test-project",
        DEPLOY_ZONE: "europe-west1-b",
        DEPLOY_INSTANCE: "a",
        DEPLOY_INSTANCE_ID: "7",
        DEPLOY_KNOWN_HOSTS: knownHosts(),
        DEPLOY_WAIT_SECONDS: "30",
      },
    });
    // Nothing listens for the first seconds; then a server that greets like sshd.
    await new Promise((ok) => setTimeout(ok, 3000));
    const server = createServer((socket) => socket.end("SSH-2.0-OpenSSH_9.9 booted\r\n"));
    await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok));
    try {
      const run = await waiting;
      expect(run.stderr).toContain("deploy-rs[a]: SSH answers");
      expect(run.exitCode).toBe(0);
    } finally {
      await new Promise((ok) => server.close(ok));
    }
  }, 60000);
});
