/**
 * `npm run rehearse` as a user runs it: its own project (the program's files
 * linked in, the fixture flake as ./flake), real Terraform, Nix and a local
 * registry, the test doubles for gcloud, ssh and deploy-rs. Apart from
 * rehearsal.test.ts, whose scenarios drive tools/rehearse.ts in-process, so the
 * two files run side by side.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { fixtureFlake, NIX_ENV, REPO_ROOT } from "./helpers/nix.js";
import { describeWithTools } from "./helpers/tools.js";
import { baseSettings } from "./helpers/settings.js";

const TIMEOUT = 240000;

const host = (nixosConfiguration: string, extra: Record<string, unknown> = {}) => ({ nixosConfiguration, image: "base", machineType: "e2-small", ...extra });

describeWithTools(["terraform", "nix", "docker-registry", "skopeo", "umoci"], "npm run rehearse", () => {
  let root: string;
  beforeEach(() => {
    // A project of its own: the program's files linked in, the fixture flake as ./flake.
    root = mkdtempSync(join(tmpdir(), "rehearse-cli-"));
    for (const entry of ["package.json", "tsconfig.json", "node_modules", "main.ts", "bin", "lib", "constructs", "tools"]) {
      symlinkSync(join(REPO_ROOT, entry), join(root, entry));
    }
    const flake = fixtureFlake();
    cpSync(flake.dir, join(root, "flake"), { recursive: true });
    flake.cleanup();
    writeFileSync(
      join(root, "infra.json"),
      JSON.stringify({
        ...baseSettings({ hosts: { vm: host("vm", { runsOciImages: ["ingest"], secrets: { "warehouse-password": {} } }) } }),
        flake: "./flake",
        ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" } },
      }),
    );
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  // What a SIGKILLed step or build leaves in $TMPDIR stays in the project, removed with it.
  const env = () => (mkdirSync(join(root, "tmp"), { recursive: true }), { ...NIX_ENV, TMPDIR: join(root, "tmp") });
  const rehearse = (...args: string[]) => execa("npm", ["run", "--silent", "rehearse", "--", ...args], { cwd: root, env: env(), reject: false });

  test("first deploy, then the next one: a line per step, what ran, the empty plan after, the wall time", async () => {
    const first = await rehearse("--fresh");
    if (first.exitCode !== 0) throw new Error(first.stderr);
    expect(first.stderr).toContain("rehearse: first deploy, from empty state (.infra/rehearsal; --fresh starts over)");
    expect(first.stderr).toMatch(/rehearse: \[ +[\d.]+s\] build +base-build\/Build: creating…/);
    for (const kind of ["build", "upload", "deploy", "gcroots", "push"]) expect(first.stderr).toMatch(new RegExp(`rehearse: {3}${kind} +ran 1 +1 created`));
    expect(first.stderr).toMatch(/rehearse: {3}image +1 created/);
    expect(first.stderr).toContain("rehearse: plan after the apply: no changes (terraform plan -detailed-exitcode exited 0)");
    expect(first.stderr).toMatch(/rehearse: wall time [\d.]+ s \(synth [\d.]+ s, init [\d.]+ s, apply [\d.]+ s, plan [\d.]+ s\)/);
    // The rehearsal's own state: GC roots under .infra/rehearsal/state, never the real .infra/gcroots.
    expect(existsSync(join(root, ".infra", "rehearsal", "state", "gcroots"))).toBe(true);
    expect(existsSync(join(root, ".infra", "gcroots"))).toBe(false);
    // The host's secret and its grant are applied; the state holds names only (values never pass through Terraform).
    const state = readFileSync(join(root, ".infra", "rehearsal", "infra", "terraform.tfstate"), "utf8");
    const kinds = JSON.parse(state).resources.map((r: { name: string }) => r.name.split("__")[0]);
    expect(kinds).toEqual(expect.arrayContaining(["google_secret_manager_secret", "google_secret_manager_secret_iam_member"]));
    expect(state).not.toMatch(/secret_version|secret_data|payload/);

    const inputs = JSON.parse(readFileSync(join(root, "flake", "inputs.json"), "utf8"));
    inputs.configurations.vm.services = "postgresql v2";
    writeFileSync(join(root, "flake", "inputs.json"), JSON.stringify(inputs));
    const next = await rehearse();
    if (next.exitCode !== 0) throw new Error(next.stderr);
    expect(next.stderr).toContain("rehearse: next deploy after the last rehearsal");
    // The replaced step checked the flake before Terraform destroyed it (constructs/deploy-rs-destroy.sh).
    expect(next.stderr).toMatch(/rehearse: {3}deploy +ran 1, 1 on destroy +1 created, 1 destroyed/);
    expect(next.stderr).not.toMatch(/rehearse: {3}(build|upload|image|push) /);

    // Then the teardown: what cdktf destroy infra runs, reviewed first; the build's destroy step drops the GC root.
    const destroyed = await rehearse("--destroy");
    if (destroyed.exitCode !== 0) throw new Error(destroyed.stderr);
    expect(destroyed.stderr).toContain("rehearse: destroy (cdktf destroy infra) of what the rehearsals deployed");
    expect(destroyed.stderr).toMatch(/rehearse: {3}instance +1 destroyed/);
    expect(destroyed.stderr).toMatch(/rehearse: {3}build +1 on destroy +1 destroyed/);
    expect(destroyed.stderr).not.toMatch(/rehearse: {3}(upload|deploy|push) +ran/);
    expect(destroyed.stderr).toContain("rehearse: plan after the apply: no changes (terraform plan -destroy -detailed-exitcode exited 0)");
    expect(destroyed.stderr).toContain("rehearse: GC roots left: 0 (.infra/rehearsal/state/gcroots); known_hosts and upload locks stay");
    expect(readdirSync(join(root, ".infra", "rehearsal", "state", "gcroots"))).toEqual([]);
  }, TIMEOUT);

  test("SIGTERM mid-apply: Terraform is stopped and saves its state, the registry ends, and the next run converges", async () => {
    // A build that would take 60 s, so the signal lands while it runs.
    const flakeNix = join(root, "flake", "flake.nix");
    const original = readFileSync(flakeNix, "utf8");
    writeFileSync(flakeNix, original.replace("mkdir -p $out/work", "sleep 60; mkdir -p $out/work"));
    const run = execa("node", ["--import", "tsx", "bin/rehearse.ts", "--fresh"], { cwd: root, env: env(), reject: false });
    let stderr = "";
    run.stderr!.on("data", (chunk) => (stderr += String(chunk)));
    const deadline = Date.now() + 60000;
    // Terraform reports a running change every 10 s, and so does the rehearsal. Its elapsed time is
    // rounded to the second: a tick that fires late under load reads "(11 s)".
    const ticked = () => /build +base-build\/Build: still creating \(\d+ s\)/.test(stderr);
    while (!ticked() && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 100));
    // Failing here, the rehearsal (Terraform, the 60 s build) must not run on into the next tests.
    if (!ticked()) {
      run.kill("SIGTERM");
      await run;
    }
    expect(stderr).toMatch(/rehearse: \[ *1\d\.\ds\] build +base-build\/Build: still creating \(1\d s\)\n/);
    const signalled = Date.now();
    run.kill("SIGTERM");
    const result = await run;
    expect(Date.now() - signalled).toBeLessThan(30000);
    expect(result.exitCode).toBe(1);
    expect(stderr).toContain("rehearse: SIGTERM: stopping; Terraform finishes saving its state");
    expect(stderr).toContain("error: rehearse: interrupted (SIGTERM); Terraform saved its state: npm run rehearse continues from it");
    // Neither Terraform nor the registry runs on in this project. (A step's own children can: Terraform
    // SIGKILLs a cancelled step's bash, not what it started; a terminal's Ctrl-C reaches those too.)
    const inRoot = async () =>
      (await execa("sh", ["-c", `for p in /proc/[0-9]*; do case "$(readlink $p/cwd)" in ${root}*) printf '%s %s\\n' "\${p#/proc/}" "$(tr '\\0\\n' '  ' < $p/cmdline)";; esac; done`])).stdout
        .split("\n")
        .filter(Boolean);
    const left = await inRoot();
    for (const line of left) {
      // Only a pid: process.kill(0) would signal this test's own process group.
      const pid = Number(/^(\d+) /.exec(line)?.[1]);
      if (!(pid > 0)) throw new Error(`not a process line: ${line}`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    expect(left.filter((line) => /terraform|docker-registry/.test(line))).toEqual([]);
    expect((await execa("pgrep", ["-f", join(root, ".infra", "rehearsal", "registry")], { reject: false })).stdout).toBe("");

    writeFileSync(flakeNix, original);
    const next = await rehearse();
    if (next.exitCode !== 0) throw new Error(next.stderr);
    expect(next.stderr).toContain("rehearse: next deploy after the last rehearsal");
    expect(next.stderr).toContain("rehearse: plan after the apply: no changes");
  }, TIMEOUT);

  test("a destroy without state, --destroy --fresh and a failed synth are named, and exit 1", async () => {
    const nothing = await rehearse("--destroy");
    expect(nothing.exitCode).toBe(1);
    expect(nothing.stderr).toContain("error: rehearse: nothing to destroy: no rehearsal state in .infra/rehearsal (run npm run rehearse first)");
    // --fresh would wipe the very state a destroy reads: refused before anything is removed.
    const state = join(root, ".infra", "rehearsal", "infra", "terraform.tfstate");
    mkdirSync(join(state, ".."), { recursive: true });
    writeFileSync(state, "{}");
    const wiped = await rehearse("--destroy", "--fresh");
    expect(wiped.exitCode).toBe(1);
    expect(wiped.stderr).toContain("error: rehearse: --destroy destroys what the last rehearsals deployed; it cannot start --fresh");
    expect(readFileSync(state, "utf8")).toBe("{}");
    const inputs = JSON.parse(readFileSync(join(root, "flake", "inputs.json"), "utf8"));
    inputs.configurations.vm.evalError = "broken on purpose";
    writeFileSync(join(root, "flake", "inputs.json"), JSON.stringify(inputs));
    const broken = await rehearse("--fresh");
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toContain("error: rehearse: synth failed:");
    expect(broken.stderr).toContain("broken on purpose");
  }, TIMEOUT);
});
