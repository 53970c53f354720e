/**
 * A rehearsal project for tests: a temporary project root holding a copy of
 * the fixture flake (./flake) and links to the step scripts, synthesized
 * in-process with real Nix, rewritten by tools/rehearse.ts into
 * <root>/.infra/rehearsal/infra (the depth of cdktf.out/stacks/infra, so the
 * synthesized relative paths hold) and applied by real Terraform, with the
 * gcloud, ssh and deploy-rs test doubles.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InfraStack } from "../../constructs/infra-stack.js";
import { resolveWithNix } from "../../lib/nix.js";
import { type ApplySummary, nameConflicts, summarizeApply } from "../../tools/apply-summary.js";
import { type Rehearsal, rehearsalConfig } from "../../tools/rehearse.js";
import { parseSettings, type SettingsInput } from "../../lib/settings.js";
import { applyReviewed, terraform, terraformBinary, type TerraformRun } from "../../tools/terraform.js";
import { App, Testing } from "cdktf";
import { DOUBLES as DOUBLE_DIR, fixtureFlake, type FixtureFlake, NIX_ENV, REPO_ROOT } from "./nix.js";
import { startSshBanner } from "../../tools/doubles/ssh-banner.js";

/** The doubles the rehearsal puts in place of gcloud, ssh and deploy-rs. */
export const DOUBLES = {
  path: [join(DOUBLE_DIR, "gcloud"), join(DOUBLE_DIR, "host-ssh")],
  deployRs: `path:${join(DOUBLE_DIR, "deploy-rs")}`,
};

export interface Applied {
  readonly run: TerraformRun;
  readonly summary: ApplySummary;
}

export interface RehearsalProject {
  readonly root: string;
  readonly flake: FixtureFlake;
  /** Settings as written; tests change them between synths. */
  settings: SettingsInput;
  /** Synthesizes with real Nix and writes the rehearsal; returns it. */
  synth(): Promise<Rehearsal>;
  /** A reviewed apply: of the plan file, or of a new plan made with `planArgs` (e.g. `-replace=<address>`). */
  apply(planFile?: string, planArgs?: string[]): Promise<Applied>;
  /** What `cdktf destroy infra` runs (`terraform destroy`): a reviewed `plan -destroy`, then its apply; counted as an apply. */
  destroy(): Promise<Applied>;
  plan(args?: string[]): Promise<TerraformRun>;
  /** `terraform apply -auto-approve <args>` in a process group of its own, for a test to signal; counted as an apply. */
  spawnApply(args?: string[]): ChildProcessByStdio<null, Readable, Readable>;
  /** Every `gcloud storage cp` the upload steps made. */
  uploads(): string[];
  /** "<node> <system>" for every activation the deploy-rs double made. */
  activations(): string[];
  /** The bucket double's copy of an object. */
  objectFile(object: string): string;
  gcRoots(): string[];
  /** Applies run so far. */
  readonly applies: number;
  /** The rewritten stack's directory and the environment Terraform and the steps run with. */
  readonly stackDir: string;
  readonly env: Record<string, string>;
  cleanup(): void;
}

export interface RehearsalProjectOptions {
  /** Directories put first on the steps' PATH (e.g. a nix spy). @default [] */
  readonly path?: string[];
  /** OCI pushes go to this registry (`host:port`, plain HTTP). @default undefined (no OCI images expected) */
  readonly ociRegistry?: string;
}

export async function rehearsalProject(settings: SettingsInput, options: RehearsalProjectOptions = {}): Promise<RehearsalProject> {
  const root = mkdtempSync(join(tmpdir(), "rehearsal-"));
  for (const dir of ["constructs", "lib"]) symlinkSync(join(REPO_ROOT, dir), join(root, dir));
  const copy = fixtureFlake();
  const flakeDir = join(root, "flake");
  // The flake lives inside the project, referred to relatively, as users write ".".
  const flake: FixtureFlake = {
    ...copy,
    dir: flakeDir,
    ref: "./flake",
    readInputs: () => JSON.parse(readFileSync(join(flakeDir, "inputs.json"), "utf8")),
    writeInputs: (inputs) => writeFileSync(join(flakeDir, "inputs.json"), JSON.stringify(inputs, null, 2)),
    cleanup: () => undefined,
  };
  mkdirSync(flakeDir);
  for (const file of ["flake.nix", "inputs.json"]) writeFileSync(join(flakeDir, file), readFileSync(join(copy.dir, file)));
  copy.cleanup();

  const stackDir = join(root, ".infra", "rehearsal", "infra");
  const gcsDir = join(root, ".infra", "rehearsal", "gcs");
  const recorderDir = join(root, ".infra", "rehearsal", "hosts");
  // Steps an interrupt SIGKILLs never run their cleanup: their temporary
  // directories stay inside the project, which cleanup() removes.
  const stepTmpDir = join(root, "tmp");
  for (const dir of [stackDir, gcsDir, recorderDir, stepTmpDir]) mkdirSync(dir, { recursive: true });
  const env = {
    ...NIX_ENV,
    TMPDIR: stepTmpDir,
    PATH: [...(options.path ?? []), ...DOUBLES.path, process.env.PATH].join(":"),
    GCS_DOUBLE_DIR: gcsDir,
    RECORDER_DIR: recorderDir,
  };
  // Direct-SSH hosts' deploys wait for a banner on their external IP: loopback, this port.
  const banner = await startSshBanner();
  let rehearsal: Rehearsal | undefined;
  const known: Rehearsal["standIns"] = {};
  let applies = 0;
  let initialized = false;
  const reviewedApply = async (planFile?: string, planArgs: string[] = []): Promise<Applied> => {
    if (!rehearsal) throw new Error("synth first");
    applies += 1;
    const standIns = { ...known, ...rehearsal.standIns };
    const { refused, run } = await applyReviewed({ dir: stackDir, env }, (plan) => nameConflicts(plan, standIns), planFile, planArgs);
    if (refused.length > 0) throw new Error(`the rehearsal refused the plan:\n${refused.join("\n")}`);
    return { run, summary: summarizeApply(run.events, standIns) };
  };
  const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

  const project: RehearsalProject = {
    root,
    flake,
    settings: { ...settings, flake: "./flake" },
    async synth() {
      const parsed = parseSettings(project.settings, "test");
      const resolved = await resolveWithNix(parsed, { projectRoot: root, log: () => undefined });
      const stack = new InfraStack(Testing.app() as App, "infra", { settings: parsed, resolved });
      rehearsal = rehearsalConfig(JSON.parse(Testing.synth(stack)), {
        stepEnvironment: { DEPLOY_RS_INSTALLABLE: DOUBLES.deployRs, DEPLOY_SSH_PORT: String(banner.port) },
        ociRegistry: options.ociRegistry,
      });
      // Stand-ins of earlier synths name what an apply destroys after its resource left the stack.
      Object.assign(known, rehearsal.standIns);
      writeFileSync(join(stackDir, "cdk.tf.json"), JSON.stringify(rehearsal.config, null, 2));
      if (!initialized) {
        const init = await terraform(["init", "-no-color"], { dir: stackDir, env });
        if (init.exitCode !== 0) throw new Error(`terraform init failed:\n${init.text}`);
        initialized = true;
      }
      return rehearsal;
    },
    apply: (planFile, planArgs) => reviewedApply(planFile, planArgs),
    destroy: () => reviewedApply(undefined, ["-destroy"]),
    plan: (args = []) => terraform(["plan", "-no-color", "-detailed-exitcode", ...args], { dir: stackDir, env }),
    spawnApply(args = []) {
      applies += 1;
      return spawn(terraformBinary(), ["apply", "-auto-approve", "-no-color", ...args], {
        cwd: stackDir,
        env: { ...process.env, ...env, TF_CLI_CONFIG_FILE: "/dev/null" },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
    },
    uploads: () => lines(join(gcsDir, "gcloud.log")).filter((l) => l.startsWith("storage cp")),
    activations: () => lines(join(recorderDir, "activations.log")),
    objectFile: (object) => join(gcsDir, parseSettings(project.settings, "test").imageBucket, object),
    gcRoots: () => {
      const dir = join(root, ".infra", "gcroots");
      return existsSync(dir) ? readdirSync(dir).sort() : [];
    },
    get applies() {
      return applies;
    },
    stackDir,
    env,
    cleanup: () => {
      banner.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return project;
}

