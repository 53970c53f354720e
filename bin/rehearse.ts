/**
 * npm run rehearse [-- [--fresh] [--verbose] [--destroy]]
 *
 * Rehearses `cdktf deploy infra` offline: synthesizes, rewrites the infra
 * stack so that real Terraform core applies it (tools/rehearse.ts), and runs
 * `terraform init`, `apply` and `plan -detailed-exitcode` in
 * .infra/rehearsal/infra, with real Nix builds and test doubles for Google
 * Cloud Storage (gcloud), the hosts (ssh) and deploy-rs. Its state persists,
 * so the next run rehearses the next deploy; --fresh starts from nothing.
 * --destroy rehearses `cdktf destroy infra` of what the rehearsals deployed.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { parseCommand, runCli } from "../lib/cli.js";
import { type LocalRegistry, startLocalRegistry } from "../tools/local-registry.js";
import { INFRA_STACK, settingsFile } from "../lib/paths.js";
import { nameConflicts, standInAt, summarizeApply, type TerraformEvent } from "../tools/apply-summary.js";
import { rehearsalConfig, RehearsalError, type StandIn, STEP_KINDS } from "../tools/rehearse.js";
import { loadSettings } from "../lib/settings.js";
import { PUSH_OCI_SCRIPT } from "../constructs/oci-image.js";
import { applyReviewed, interruptTerraform, terraform } from "../tools/terraform.js";
import { startSshBanner } from "../tools/doubles/ssh-banner.js";

/** Three levels below the project root, like cdktf.out/stacks/infra: the synthesized relative paths hold. */
const BASE = ".infra/rehearsal";
const DOUBLES = fileURLToPath(new URL("../tools/doubles", import.meta.url));
const ACTIONS: Record<string, string> = { create: "creating", update: "updating", delete: "destroying", read: "reading" };

await runCli(async () => {
  const args = parseCommand({
    usage: "npm run rehearse [-- [--fresh] [--verbose] [--destroy]]",
    does: `Rehearses cdktf deploy infra offline: real Terraform core applies the synthesized stack with stand-ins for Google, real Nix builds and test doubles (state in ${BASE}).`,
    flags: {
      fresh: { help: "start from empty state instead of the last rehearsal's" },
      verbose: { help: "show each step's output" },
      destroy: { help: "rehearse cdktf destroy infra of what the rehearsals deployed" },
    },
  });
  if (!args) return;
  const verbose = args.flags.verbose === true;
  // What `cdktf destroy infra` runs: terraform destroy, i.e. a plan -destroy and its apply.
  const destroy = args.flags.destroy === true;
  if (destroy && args.flags.fresh) throw new RehearsalError("--destroy destroys what the last rehearsals deployed; it cannot start --fresh");
  const started = Date.now();
  const root = process.cwd();
  const base = resolve(root, BASE);
  const stackDir = join(base, INFRA_STACK);
  const file = settingsFile();
  loadSettings(file); // bad settings stop here, with the settings' own messages

  if (args.flags.fresh) rmSync(base, { recursive: true, force: true });
  const dirs = { gcs: join(base, "gcs"), hosts: join(base, "hosts"), registry: join(base, "registry") };
  for (const dir of [stackDir, ...Object.values(dirs)]) mkdirSync(dir, { recursive: true });
  const say = (line: string) => process.stderr.write(`rehearse: ${line}\n`);
  // Interrupted, the rehearsal stops Terraform and waits for it to save its state (exiting at once would
  // leave it applying on, or dying on a closed pipe), then stops the registry it started, and the next
  // run continues from that state. A second signal ends the process at once.
  let interrupted: string | undefined;
  const stopIfInterrupted = () => {
    if (interrupted) throw new RehearsalError(`interrupted (${interrupted}); Terraform saved its state: npm run rehearse continues from it`);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      interrupted = signal;
      say(`${signal}: stopping; Terraform finishes saving its state (a second signal ends this at once)`);
      // A terminal's Ctrl-C reaches Terraform too, and a second SIGINT would make it exit without saving.
      if (signal !== "SIGINT") interruptTerraform();
    });
  }
  const deployed = existsSync(join(stackDir, "terraform.tfstate"));
  if (destroy && !deployed) throw new RehearsalError(`nothing to destroy: no rehearsal state in ${BASE} (run npm run rehearse first)`);
  say(
    `${destroy ? "destroy (cdktf destroy infra) of what the rehearsals deployed" : deployed ? "next deploy after the last rehearsal" : "first deploy, from empty state"} (${BASE}; --fresh starts over)`,
  );

  // Synthesize through the usual path, with the rehearsal's own state dir: its GC roots and known_hosts are not the real ones.
  const raw = JSON.parse(readFileSync(file, "utf8"));
  writeFileSync(join(base, "infra.json"), JSON.stringify({ ...raw, stateDir: `${BASE}/state` }, null, 2));
  let mark = Date.now();
  const synth = await execa("npm", ["run", "--silent", "synth"], {
    env: { INFRA_CONFIG: join(base, "infra.json"), CDKTF_OUTDIR: join(base, "cdktf.out") },
    reject: false,
    all: true,
  });
  if (synth.exitCode !== 0) throw new RehearsalError(`synth failed:\n${synth.all}`);
  stopIfInterrupted();
  const synthSeconds = seconds(mark);
  say(`synthesized in ${synthSeconds.toFixed(1)} s`);

  const stack = JSON.parse(readFileSync(join(base, "cdktf.out", "stacks", INFRA_STACK, "cdk.tf.json"), "utf8"));
  const pushes = Object.values<any>(stack.resource?.null_resource ?? {}).some((r) => r.provisioner?.some((p: any) => p["local-exec"]?.command === PUSH_OCI_SCRIPT));
  const registry = pushes ? await startRegistry(dirs.registry) : undefined;
  // Direct-SSH hosts' deploys wait for an SSH banner on their external IP, which the rehearsal puts on loopback.
  const banner = await startSshBanner();
  try {
    const { config, standIns: current } = rehearsalConfig(stack, {
      // Never the real deploy-rs: it would connect to real hosts.
      stepEnvironment: { DEPLOY_RS_INSTALLABLE: `path:${join(DOUBLES, "deploy-rs")}`, DEPLOY_SSH_PORT: String(banner.port) },
      ociRegistry: registry?.address,
    });
    writeFileSync(join(stackDir, "cdk.tf.json"), JSON.stringify(config, null, 2));
    // Earlier rehearsals' stand-ins name what this apply destroys after it left the stack.
    const known = join(stackDir, "stand-ins.json");
    const standIns = { ...(existsSync(known) ? JSON.parse(readFileSync(known, "utf8")) : {}), ...current };
    writeFileSync(known, JSON.stringify(standIns, null, 2));
    const env = {
      PATH: [join(DOUBLES, "gcloud"), join(DOUBLES, "host-ssh"), process.env.PATH].join(":"),
      GCS_DOUBLE_DIR: dirs.gcs,
      RECORDER_DIR: dirs.hosts,
    };

    mark = Date.now();
    const init = await terraform(["init", "-no-color"], { dir: stackDir, env });
    stopIfInterrupted();
    if (init.exitCode !== 0) throw new RehearsalError(`terraform init failed:\n${init.text}`);
    const initSeconds = seconds(mark);

    mark = Date.now();
    const applyStarted = Date.now();
    // Planned to a file and reviewed first: Terraform cannot see a name Google would refuse.
    const { refused, run: apply } = await applyReviewed(
      { dir: stackDir, env, onEvent: (event) => progress(event, standIns, applyStarted, verbose, say) },
      (plan) => {
        stopIfInterrupted();
        return nameConflicts(plan, standIns);
      },
      undefined,
      destroy ? ["-destroy"] : [],
    );
    stopIfInterrupted();
    if (refused.length > 0) throw new RehearsalError(`the plan would fail at Google; nothing was applied:\n  ${refused.join("\n  ")}`);
    const applySeconds = seconds(mark);
    const summary = summarizeApply(apply.events, standIns);
    for (const error of summary.errors) say(`error: ${error}`);

    mark = Date.now();
    const plan = await terraform(["plan", "-json", "-detailed-exitcode", ...(destroy ? ["-destroy"] : [])], { dir: stackDir, env });
    const planSeconds = seconds(mark);
    const remaining = plan.events
      .filter((e) => e.type === "planned_change")
      .map((e) => `${e.change?.action} ${name(standIns, e.change?.resource?.addr ?? "")}`);

    say("what the apply did, per step:");
    const counts = summary.steps;
    for (const kind of STEP_KINDS) {
      const c = counts[kind];
      const changes = (["created", "updated", "destroyed"] as const).filter((k) => c[k] > 0).map((k) => `${c[k]} ${k}`);
      if (c.ran + c.ranOnDestroy + c.failed === 0 && changes.length === 0) continue;
      const runs = [c.ran ? `ran ${c.ran}` : "", c.ranOnDestroy ? `${c.ranOnDestroy} on destroy` : "", c.failed ? `FAILED ${c.failed}` : ""].filter(Boolean).join(", ");
      say(`  ${kind.padEnd(9)} ${runs.padEnd(20)} ${changes.join(", ")}`);
    }
    if (summary.order.length === 0) say("  nothing (the plan was empty)");
    say(
      plan.exitCode === 0
        ? `plan after the apply: no changes (terraform plan${destroy ? " -destroy" : ""} -detailed-exitcode exited 0)`
        : `plan after the apply: ${remaining.length} change(s) left (exit ${plan.exitCode})${remaining.map((r) => `\n    ${r}`).join("")}`,
    );
    say(
      `wall time ${seconds(started).toFixed(1)} s (synth ${synthSeconds.toFixed(1)} s, init ${initSeconds.toFixed(1)} s, apply ${applySeconds.toFixed(1)} s, plan ${planSeconds.toFixed(1)} s)`,
    );
    if (apply.exitCode !== 0) throw new RehearsalError("the apply failed (see the errors above); fix the cause and run npm run rehearse again");
    if (destroy) {
      // What a destroy leaves on the deploying machine on purpose (README: Tearing down).
      const gcRoots = join(base, "state", "gcroots");
      say(`GC roots left: ${existsSync(gcRoots) ? readdirSync(gcRoots).length : 0} (${BASE}/state/gcroots); known_hosts and upload locks stay`);
    }
    if (plan.exitCode !== 0) throw new RehearsalError(`the apply left changes behind: a real ${destroy ? "destroy" : "deploy"} would not converge`);
  } finally {
    await registry?.stop();
    banner.stop();
  }
});

function seconds(since: number): number {
  return (Date.now() - since) / 1000;
}

/** What people call a stand-in: its construct path, or the original address. */
function name(standIns: Record<string, StandIn>, address: string): string {
  const standIn = standInAt(address, standIns);
  if (!standIn) return address;
  return standIn.path?.replace(new RegExp(`^${INFRA_STACK}/`), "") ?? standIn.original;
}

/** One line as each change starts and ends, and every 10 s while it runs; step output with --verbose. */
function progress(event: TerraformEvent, standIns: Record<string, StandIn>, since: number, verbose: boolean, say: (line: string) => void) {
  const addr = event.hook?.resource?.addr;
  if (!addr) return;
  const standIn = standInAt(addr, standIns);
  const kind = standIn && standIn.kind !== "other" ? standIn.kind : (standIn?.original.split(".").at(-2)?.replace(/^google_/, "") ?? "resource");
  const at = `[${seconds(since).toFixed(1).padStart(5)}s] ${kind.padEnd(9)} ${name(standIns, addr)}`;
  const action = event.hook?.action ?? "";
  if (event.type === "apply_start") say(`${at}: ${ACTIONS[action] ?? action}…`);
  else if (event.type === "apply_progress") say(`${at}: still ${ACTIONS[action] ?? action} (${event.hook?.elapsed_seconds ?? 0} s)`);
  else if (event.type === "apply_complete") say(`${at}: ${action} done (${event.hook?.elapsed_seconds ?? 0} s)`);
  else if (event.type === "apply_errored") say(`${at}: ${action} FAILED`);
  else if (event.type === "provision_errored") say(`${at}: its step failed`);
  else if (verbose && event.type === "provision_progress" && event.hook?.output) say(`    ${event.hook.output}`);
}

/** OCI pushes go to a real registry on 127.0.0.1 (Debian's docker-registry), never to Artifact Registry. */
async function startRegistry(dir: string): Promise<LocalRegistry> {
  const missing = ["docker-registry", "skopeo", "umoci"].filter((tool) => {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    throw new RehearsalError(`the stack pushes OCI images, which the rehearsal pushes to a local registry: ${missing.join(", ")} not on PATH (Debian: apt-get install docker-registry skopeo umoci)`);
  }
  try {
    return await startLocalRegistry(dir);
  } catch (e) {
    throw new RehearsalError((e as Error).message);
  }
}
