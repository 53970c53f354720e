/**
 * One GitHub Actions job, run here as a GitHub-hosted ubuntu-latest runner
 * would run it (the workflow rehearsal): its steps in order, `run:` steps
 * with real bash in a fresh clone, `if:` and `${{ }}` evaluated by GitHub's
 * own expression library (@actions/expressions), with the environment GitHub
 * gives: CI=true, the GITHUB_* basics, a HOME without SSH keys, an OIDC
 * token request only where the job has `id-token: write`, environment
 * secrets only in a job of that environment, and a PATH of what the runner
 * image has plus what the job's steps add.
 *
 * The runner image is approximated by this machine's system directories,
 * less what ubuntu-latest lacks (NOT_ON_RUNNER). What that means: the same
 * tool names as Ubuntu's, in Debian 12's versions; tools the tests look for
 * at a fixed path (/usr/sbin/sshd, the zoneinfo files) count as this machine
 * has them; the jobs run as this user (root here; sudo is a double), and
 * ssh finds the user's home from the password database, not from HOME.
 * `uses:` steps that need GitHub or Google are doubles (USES below), and so
 * is apt-get (fixtures/doubles/runner): it "installs" only what this machine
 * has, by putting it on the job's PATH.
 * A test may replace a `run:` line (`substitute`) or skip a step (`skip`),
 * each with the reason, which the job's log shows.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { data, Evaluator, Lexer, Parser } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";
import { parse } from "yaml";
import { DOUBLES, FIXTURES } from "./nix.js";

/** Debian packages whose tools a fresh ubuntu-latest runner does not have (plus terraform, which setup-terraform adds). */
const NOT_ON_RUNNER = ["nix-bin", "umoci", "docker-registry"];
const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
const RUNNER_DOUBLES = join(FIXTURES, "doubles", "runner");

const packageBins = (pkg: string): string[] =>
  execFileSync("dpkg", ["-L", pkg], { encoding: "utf8" })
    .split("\n")
    .filter((f) => /^\/(usr\/)?s?bin\/[^/]+$/.test(f));
const which = (tool: string) => execFileSync("sh", ["-c", 'command -v "$1"', "sh", tool], { encoding: "utf8" }).trim();

/** A directory of links to this machine's system tools, less those ubuntu-latest lacks and those doubled. */
export function runnerImage(dir: string): string {
  const hidden = new Set([...NOT_ON_RUNNER.flatMap(packageBins).map((f) => f.split("/").pop()!), "terraform", "sudo", "apt-get", "gcloud"]);
  mkdirSync(dir, { recursive: true });
  const seen = new Set<string>();
  for (const sys of SYSTEM_DIRS) {
    if (!existsSync(sys)) continue;
    for (const name of readdirSync(sys)) {
      if (seen.has(name) || hidden.has(name)) continue;
      seen.add(name);
      symlinkSync(join(sys, name), join(dir, name));
    }
  }
  for (const name of ["sudo", "apt-get"]) symlinkSync(join(RUNNER_DOUBLES, name), join(dir, name));
  return dir;
}

export interface Substitution {
  /** A line of a `run:` script, as written (trimmed). */
  readonly line: string;
  readonly with: string;
  readonly why: string;
}
export interface Comment {
  id: number;
  body: string;
  user: { type: string };
  html_url: string;
}
export interface JobOptions {
  readonly workflow: string;
  readonly job: string;
  /** The repository `actions/checkout` clones. */
  readonly origin: string;
  /** The runner image directory (runnerImage). */
  readonly image: string;
  readonly event: { readonly name: string; readonly payload: Record<string, unknown> };
  /** Secrets of the job's environment (`environment:`); a job without one gets none. */
  readonly secrets?: Record<string, string>;
  readonly vars?: Record<string, string>;
  readonly substitute?: readonly Substitution[];
  /** Steps (by name or run text) not run, with why. */
  readonly skip?: readonly { readonly step: string; readonly why: string }[];
  /** Called before the named step runs, with the workspace. */
  readonly before?: Record<string, (workspace: string) => void | Promise<void>>;
  /** actions/cache's store: one directory per key. */
  readonly cacheDir: string;
  /** The buckets gcloud serves once setup-gcloud ran (the gcloud double's GCS_DOUBLE_DIR). @default none: its storage commands fail */
  readonly gcsDir?: string;
  /** The pull request's comments (github-script's double), changed in place. */
  readonly comments?: Comment[];
  /** The results of the jobs this one needs (its `needs:`), e.g. { test: "failure" }. @default each one succeeded */
  readonly needs?: Record<string, "success" | "failure" | "cancelled" | "skipped">;
  /** The run's id and attempt, for a re-run (GitHub keeps the id and counts attempts). @default a new id, attempt 1 */
  readonly run?: { readonly id: string; readonly attempt: number };
}
export interface StepResult {
  readonly name: string;
  readonly outcome: "success" | "failure" | "skipped";
  readonly output: string;
}
export interface JobResult {
  readonly conclusion: "success" | "failure" | "skipped";
  readonly steps: StepResult[];
  readonly workspace: string;
  readonly home: string;
  /** Every step's name, outcome and output: print it when an expectation fails. */
  readonly log: string;
  /** What the steps wrote to $GITHUB_STEP_SUMMARY: the run's summary page. */
  readonly summary: string;
  step(name: string): StepResult;
  cleanup(): void;
}

let runs = 0;
const CONTEXTS = ["github", "env", "vars", "secrets", "steps", "job", "runner", "needs", "inputs", "matrix", "strategy"];
const STATUS = ["success", "failure", "always", "cancelled"];

function evaluate(expression: string, context: Record<string, unknown>, failed: boolean): data.ExpressionData {
  const tokens = new Lexer(expression).lex().tokens;
  const expr = new Parser(tokens, CONTEXTS, STATUS.map((name) => ({ name, minArgs: 0, maxArgs: 0 }))).parse();
  const value = { success: !failed, failure: failed, always: true, cancelled: false };
  const functions = new Map(STATUS.map((name) => [name, { name, minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(value[name as keyof typeof value]) }]));
  return new Evaluator(expr, JSON.parse(JSON.stringify(context), data.reviver), functions).evaluate();
}
const interpolate = (text: string, context: Record<string, unknown>, failed: boolean) =>
  text.replace(/\$\{\{(.*?)\}\}/gs, (_, e: string) => evaluate(e.trim(), context, failed).coerceString());
const condition = (text: string | undefined, context: Record<string, unknown>, failed: boolean) => {
  const expression = (text ?? "success()").trim().replace(/^\$\{\{(.*)\}\}$/s, "$1").trim();
  // GitHub adds success() unless the condition calls a status function itself.
  const full = /\b(success|failure|always|cancelled)\(\)/.test(expression) ? expression : `success() && (${expression})`;
  return truthy(evaluate(full, context, failed));
};

/** Runs one job of a workflow file; never throws for a failing step (see conclusion). */
export async function runJob(options: JobOptions): Promise<JobResult> {
  const workflow = parse(readFileSync(options.workflow, "utf8"));
  const job = workflow.jobs?.[options.job];
  if (!job) throw new Error(`${options.workflow} has no job ${options.job}`);
  const root = mkdtempSync(join(tmpdir(), `workflow-${options.job}-`));
  const [workspace, home, temp, tools] = ["work", "home", "temp", "tools"].map((d) => join(root, d));
  for (const d of [workspace, home, temp, tools]) mkdirSync(d);
  const aptBin = join(temp, "apt-bin");
  const permissions: Record<string, string> = job.permissions ?? workflow.permissions ?? {};
  const runId = options.run?.id ?? String(Date.now() * 100 + (runs++ % 100));
  const runAttempt = String(options.run?.attempt ?? 1);
  const repository = "example/nixos-gce-cdktf";
  const github = {
    event_name: options.event.name,
    event: options.event.payload,
    repository,
    run_id: runId,
    run_attempt: runAttempt,
    sha: execFileSync("git", ["-C", options.origin, "rev-parse", "HEAD"], { encoding: "utf8" }).trim(),
    ref: "refs/heads/main",
    server_url: "https://github.com",
    workspace,
  };
  const secrets = job.environment ? (options.secrets ?? {}) : {};
  const steps: Record<string, { outcome: string; conclusion: string; outputs: Record<string, string> }> = {};
  const jobEnv: Record<string, string> = {};
  const path: string[] = [];
  let failed = false;
  const needed: string[] = [job.needs ?? []].flat();
  const needs = Object.fromEntries(needed.map((id) => [id, { result: options.needs?.[id] ?? "success", outputs: {} }]));
  const context = () => ({ github, env: jobEnv, vars: options.vars ?? {}, secrets, steps, needs, job: { status: failed ? "failure" : "success" }, runner: { os: "Linux", temp } });

  const base: Record<string, string> = {
    CI: "true",
    GITHUB_ACTIONS: "true",
    GITHUB_WORKSPACE: workspace,
    GITHUB_REPOSITORY: repository,
    GITHUB_RUN_ID: runId,
    GITHUB_RUN_ATTEMPT: runAttempt,
    GITHUB_SHA: github.sha,
    GITHUB_REF: github.ref,
    GITHUB_EVENT_NAME: options.event.name,
    GITHUB_SERVER_URL: github.server_url,
    GITHUB_JOB: options.job,
    RUNNER_OS: "Linux",
    RUNNER_TEMP: temp,
    HOME: home,
    USER: process.env.USER ?? "runner",
    LANG: "C.UTF-8",
    APT_DOUBLE_BIN: aptBin,
  };
  // GitHub gives these only to a job that may mint an OIDC token.
  if (permissions["id-token"] === "write") {
    base.ACTIONS_ID_TOKEN_REQUEST_URL = "https://token.actions.githubusercontent.com.invalid/oidc-double";
    base.ACTIONS_ID_TOKEN_REQUEST_TOKEN = `oidc-request-double-${randomBytes(4).toString("hex")}`;
  }
  for (const [k, v] of Object.entries<string>(workflow.env ?? {})) jobEnv[k] = interpolate(String(v), context(), false);
  for (const [k, v] of Object.entries<string>(job.env ?? {})) jobEnv[k] = interpolate(String(v), context(), false);

  const results: StepResult[] = [];
  const log: string[] = [];
  const posts: (() => void)[] = [];
  const summary: string[] = [];
  let mark = Date.now();
  // continue-on-error: the step's outcome is kept, its conclusion is success and the job goes on.
  const record = (name: string, outcome: StepResult["outcome"], output: string, id?: string, continueOnError = false) => {
    results.push({ name, outcome, output });
    log.push(`=== ${name}: ${outcome}${outcome === "failure" && continueOnError ? " (continue-on-error)" : ""} (${((Date.now() - mark) / 1000).toFixed(1)} s)\n${output.trimEnd()}`);
    mark = Date.now();
    const conclusion = continueOnError ? "success" : outcome;
    if (id) steps[id] = { outcome, conclusion, outputs: {} };
    if (conclusion === "failure") failed = true;
  };
  const envFor = (stepEnv: Record<string, string>) => ({ ...base, ...jobEnv, ...stepEnv, PATH: [...path, aptBin, options.image].join(":") });

  const conclusion = () => (failed ? "failure" : "success");
  const result = (c: JobResult["conclusion"]): JobResult => ({
    conclusion: c,
    steps: results,
    workspace,
    home,
    log: log.join("\n"),
    summary: summary.join(""),
    step: (name) => {
      const found = results.find((s) => s.name === name);
      if (!found) throw new Error(`no step ${name} ran; steps: ${results.map((s) => s.name).join(", ")}`);
      return found;
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  });
  // A job's success() is its needs' (GitHub's default condition when it has none).
  const needsFailed = Object.values(needs).some((n) => n.result !== "success");
  if (!condition(job.if === undefined ? undefined : String(job.if), context(), needsFailed)) return result("skipped");

  for (const [index, step] of (job.steps as any[]).entries()) {
    const name: string = step.name ?? (step.run ? String(step.run).split("\n")[0] : String(step.uses).split("@")[0]);
    const skip = options.skip?.find((s) => s.step === name || (step.run && String(step.run).includes(s.step)));
    if (skip) {
      record(name, "skipped", `skipped by the rehearsal: ${skip.why}`, step.id);
      continue;
    }
    if (!condition(step.if, context(), failed)) {
      record(name, "skipped", `if: ${step.if ?? "success()"} is false`, step.id);
      continue;
    }
    await options.before?.[name]?.(workspace);
    const stepEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries<string>(step.env ?? {})) stepEnv[k] = interpolate(String(v), context(), failed);
    const inputs: Record<string, string> = {};
    for (const [k, v] of Object.entries<string>(step.with ?? {})) inputs[k] = interpolate(String(v), context(), failed);
    let outcome: StepResult["outcome"] = "success";
    let output = "";
    if (step.run) {
      let script = String(step.run);
      const notes: string[] = [];
      for (const s of options.substitute ?? []) {
        const lines = script.split("\n");
        if (!lines.some((l) => l.trim() === s.line)) continue;
        script = lines.map((l) => (l.trim() === s.line ? l.replace(s.line, s.with) : l)).join("\n");
        notes.push(`rehearsal: \`${s.line}\` runs as \`${s.with}\` (${s.why})`);
      }
      script = interpolate(script, context(), failed);
      const file = join(temp, `step-${index}.sh`);
      const ghFiles = {
        GITHUB_ENV: join(temp, `env-${index}`),
        GITHUB_PATH: join(temp, `path-${index}`),
        GITHUB_OUTPUT: join(temp, `output-${index}`),
        GITHUB_STEP_SUMMARY: join(temp, `summary-${index}`),
      };
      for (const f of Object.values(ghFiles)) writeFileSync(f, "");
      writeFileSync(file, script);
      // GitHub's default shell on Linux; `shell: bash` adds pipefail and skips the profiles.
      const shell = step.shell === "bash" ? ["bash", "--noprofile", "--norc", "-eo", "pipefail", file] : ["bash", "-e", file];
      const run = await execa(shell[0], shell.slice(1), {
        cwd: step["working-directory"] ? join(workspace, step["working-directory"]) : workspace,
        env: { ...envFor(stepEnv), ...ghFiles },
        extendEnv: false,
        reject: false,
        all: true,
      });
      output = [...notes, run.all ?? ""].filter(Boolean).join("\n");
      outcome = run.exitCode === 0 ? "success" : "failure";
      for (const line of readFileSync(ghFiles.GITHUB_ENV, "utf8").split("\n").filter(Boolean)) {
        const at = line.indexOf("=");
        if (at > 0) jobEnv[line.slice(0, at)] = line.slice(at + 1);
      }
      path.unshift(...readFileSync(ghFiles.GITHUB_PATH, "utf8").split("\n").filter(Boolean).reverse());
      summary.push(readFileSync(ghFiles.GITHUB_STEP_SUMMARY, "utf8"));
    } else {
      const action = String(step.uses).split("@")[0];
      const double = USES[action];
      if (!double) throw new Error(`the rehearsal has no double for ${action}`);
      try {
        output = (await double({ inputs, workspace, tools, options, env: envFor(stepEnv), jobEnv, path, posts, failed: () => failed, context: context() })) ?? "";
      } catch (e) {
        outcome = "failure";
        output = (e as Error).message;
      }
    }
    record(name, outcome, output, step.id, step["continue-on-error"] === true);
  }
  for (const post of posts) post();
  if (posts.length) log.push(`=== post steps ran (job ${conclusion()})`);
  return result(conclusion());
}

interface UsesCall {
  readonly inputs: Record<string, string>;
  readonly workspace: string;
  readonly tools: string;
  readonly options: JobOptions;
  readonly env: Record<string, string>;
  readonly jobEnv: Record<string, string>;
  readonly path: string[];
  readonly posts: (() => void)[];
  readonly failed: () => boolean;
  readonly context: Record<string, any>;
}
/** A tool of this machine, put on the job's PATH as a setup action would. */
function expose(call: UsesCall, name: string, files: string[]): void {
  const dir = join(call.tools, name);
  mkdirSync(dir, { recursive: true });
  for (const f of files) symlinkSync(f, join(dir, f.split("/").pop()!));
  call.path.unshift(dir);
}
function restoreCache(call: UsesCall): string {
  const { path, key } = call.inputs;
  const prefixes = (call.inputs["restore-keys"] ?? "").split("\n").filter(Boolean);
  const keys = existsSync(call.options.cacheDir) ? readdirSync(call.options.cacheDir) : [];
  const newest = (ks: string[]) => ks.sort((a, b) => statSync(join(call.options.cacheDir, b)).mtimeMs - statSync(join(call.options.cacheDir, a)).mtimeMs)[0];
  const hit = keys.includes(key) ? key : newest(keys.filter((k) => prefixes.some((p) => k.startsWith(p))));
  if (!hit) return `cache double: no cache for ${key}`;
  cpSync(join(call.options.cacheDir, hit), join(call.workspace, path), { recursive: true });
  return `cache double: restored ${path} from ${hit}`;
}
function saveCache(call: UsesCall): string {
  const { path, key } = call.inputs;
  const dest = join(call.options.cacheDir, key);
  if (!existsSync(join(call.workspace, path))) return `Warning: Path Validation Error: ${path} does not exist, hence no cache is being saved.`;
  if (existsSync(dest)) return `Warning: cache ${key} exists already`;
  cpSync(join(call.workspace, path), dest, { recursive: true });
  return `cache double: saved ${path} as ${key}`;
}

const USES: Record<string, (call: UsesCall) => Promise<string | void> | string | void> = {
  "actions/checkout": async (call) => {
    // As the real action: one commit unless fetch-depth says otherwise (0: all history).
    const depth = call.inputs["fetch-depth"] ?? "1";
    const shallow = depth === "0" ? [] : ["--depth", depth];
    await execa("git", ["clone", "--quiet", ...shallow, `file://${call.options.origin}`, call.workspace]);
    return `checkout double: cloned ${call.options.origin} (fetch-depth ${depth})`;
  },
  "cachix/install-nix-action": (call) => {
    expose(call, "nix", packageBins("nix-bin"));
    // install-nix-action writes nix.conf; here NIX_CONFIG, and no binary cache (cache.nixos.org is unreachable).
    call.jobEnv.NIX_CONFIG = `${call.inputs.extra_nix_config ?? ""}\nsubstituters =`;
    return "install-nix double: this machine's Nix on PATH, extra_nix_config in NIX_CONFIG";
  },
  "actions/setup-node": (call) => {
    const version = execFileSync("node", ["--version"], { env: call.env, encoding: "utf8" }).trim();
    if (!version.startsWith(`v${call.inputs["node-version"]}.`)) throw new Error(`setup-node double: the runner's node is ${version}, the job asks for ${call.inputs["node-version"]}`);
    return `setup-node double: node ${version}`;
  },
  "hashicorp/setup-terraform": (call) => {
    const binary = which("terraform");
    const version = JSON.parse(execFileSync(binary, ["version", "-json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })).terraform_version;
    if (version !== call.inputs.terraform_version) throw new Error(`setup-terraform double: this machine has terraform ${version}, the job asks for ${call.inputs.terraform_version}`);
    expose(call, "terraform", [binary]);
    return `setup-terraform double: terraform ${version}`;
  },
  "google-github-actions/auth": (call) => {
    // The real action exchanges the job's OIDC token; without id-token: write it fails the same way.
    if (!call.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) throw new Error("auth double: the job has no OIDC token request (permissions: id-token: write)");
    for (const input of ["workload_identity_provider", "service_account"]) if (!call.inputs[input]) throw new Error(`auth double: ${input} is empty`);
    const file = join(call.workspace, `gha-creds-${randomBytes(8).toString("hex")}.json`);
    writeFileSync(file, JSON.stringify({ type: "external_account", double: true }));
    Object.assign(call.jobEnv, { GOOGLE_APPLICATION_CREDENTIALS: file, CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE: file, GOOGLE_GHA_CREDS_PATH: file });
    return `auth double: credentials for ${call.inputs.service_account}`;
  },
  "google-github-actions/setup-gcloud": (call) => {
    call.path.unshift(join(DOUBLES, "gcloud"));
    if (call.options.gcsDir) call.jobEnv.GCS_DOUBLE_DIR = call.options.gcsDir;
    return `setup-gcloud double: the gcloud double on PATH, its buckets in ${call.options.gcsDir ?? "(none)"}`;
  },
  // actions/cache restores here and saves in its post step, which runs only when the job succeeded.
  "actions/cache": (call) => {
    call.posts.push(() => {
      if (!call.failed()) saveCache(call);
    });
    return restoreCache(call);
  },
  "actions/cache/restore": restoreCache,
  "actions/cache/save": saveCache,
  "actions/github-script": async (call) => {
    const state = join(call.tools, "github-state.json");
    writeFileSync(state, JSON.stringify(call.options.comments ?? []));
    const script = join(call.tools, "github-script.js");
    writeFileSync(script, call.inputs.script);
    const ctx = call.context.github;
    const [owner, repo] = ctx.repository.split("/");
    const run = await execa("node", [join(RUNNER_DOUBLES, "github-script.mjs"), script, state], {
      cwd: call.workspace,
      // context.payload is the event's payload, as in actions/github-script.
      env: { ...call.env, GITHUB_SCRIPT_CONTEXT: JSON.stringify({ repo: { owner, repo }, issue: { owner, repo, number: ctx.event.number }, payload: ctx.event, runId: Number(ctx.run_id), sha: ctx.sha, serverUrl: ctx.server_url }) },
      extendEnv: false,
      reject: false,
      all: true,
    });
    const comments: Comment[] = JSON.parse(readFileSync(state, "utf8"));
    if (call.options.comments) call.options.comments.splice(0, call.options.comments.length, ...comments);
    if (run.exitCode !== 0) throw new Error(run.all);
    return run.all;
  },
};
