/**
 * The workflow rehearsal: the pull-request jobs and the deploy jobs, run
 * step by step as GitHub would run them (helpers/workflow-runner.ts), each
 * on a fresh clone of a project made from this commit: its workflows,
 * scripts and program, with the fixture flake as ./flake (the real flake
 * needs nixpkgs from the network), a gcs backend and a committed lock.
 *
 * What stands in, and why (each substitution is named in the job's log):
 * - `npm ci` links this checkout's node_modules (same package-lock.json): a
 *   real install takes minutes and is not what the workflows get wrong;
 * - `npm test` is the npm-test double: the real one runs this file, so it
 *   would recurse; the double checks what depends on the job (the tools,
 *   with CI=true, and whether the step could mint an OIDC token);
 * - the plan runs on the Terraform rehearsal's stand-ins (lib/rehearse.ts
 *   rewrites the synthesized stack: no Google provider here), and the
 *   deploy is `npm run rehearse` (real Terraform, Nix and step scripts), whose
 *   hosts log in through real OpenSSH: a real sshd on 127.0.0.1 that accepts
 *   only the deploy key, so a deploy without the key fails here as on GitHub.
 * Not rehearsed: pull-request.yml's flake-check and image.yml (nixpkgs from
 * the network, KVM builds; see SKIPPED_JOBS).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parse } from "yaml";
import { rehearsalConfig } from "../tools/rehearse.js";
import { baseSettings } from "./helpers/settings.js";
import { type Sshd, startSshd } from "./helpers/sshd.js";
import { type Comment, type JobOptions, type JobResult, runJob, runnerImage } from "./helpers/workflow-runner.js";
import { FIXTURES, fixtureFlake, NIX_ENV, REPO_ROOT } from "./helpers/nix.js";
import { describeWithTools } from "./helpers/tools.js";

const TIMEOUT = 180000;
/** Jobs the rehearsal does not run, and why. */
const SKIPPED_JOBS: Record<string, string> = {
  "pull-request.yml flake-check": "nix flake check fetches the pinned nixpkgs and deploy-rs: no network here",
  "image.yml build": "builds the real images: nixpkgs from the network and KVM",
};
const REHEARSED = ["pull-request.yml test", "pull-request.yml pin-check", "pull-request.yml diff", "deploy.yml verify", "deploy.yml deploy"];
const MARKER = "<!-- nixos-gce-cdktf plan summary -->";
/** The deploys' known_hosts in the state bucket (npm run host-keys), under the gcloud double's directory. */
const KEYS_OBJECT = "test-project-tfstate/nixos-gce/known_hosts/infra";
/** WORKFLOWS_FROM=<commit or directory>: those workflow files instead (to show what another version gets wrong). */
const WORKFLOWS_FROM = process.env.WORKFLOWS_FROM;

test("every job of every workflow is rehearsed or skipped with a reason", () => {
  const dir = join(REPO_ROOT, ".github", "workflows");
  const jobs = readdirSync(dir).flatMap((f) => Object.keys(parse(readFileSync(join(dir, f), "utf8")).jobs).map((j) => `${f} ${j}`));
  expect(jobs.filter((j) => !REHEARSED.includes(j) && !SKIPPED_JOBS[j])).toEqual([]);
});

describeWithTools(["terraform", "nix", "sshd", "ssh", "docker-registry", "skopeo", "umoci"], "workflow rehearsal", () => {
  let root: string;
  let origin: string;
  let image: string;
  let sshd: Sshd;
  const vars = {
    GCP_WORKLOAD_IDENTITY_PROVIDER: "projects/1/locations/global/workloadIdentityPools/github/providers/github",
    GCP_PLAN_SERVICE_ACCOUNT: "plan@test-project.iam.gserviceaccount.com",
    GCP_DEPLOY_SERVICE_ACCOUNT: "deploy@test-project.iam.gserviceaccount.com",
  };
  // head.sha is set in beforeAll: the pull request's change. base.sha names no commit: on GitHub it
  // can be older than the base the merge commit was made on, so the workflow takes the merge
  // commit's first parent, and a workflow that read base.sha would fail here.
  const pullRequest = { name: "pull_request", payload: { number: 7, pull_request: { number: 7, base: { sha: "0".repeat(40) }, head: { sha: "", repo: { full_name: "example/nixos-gce-cdktf" } } } } };
  const push = { name: "push", payload: {} };
  const results: JobResult[] = [];
  let started = 0;
  let noKeyBucket: string;
  /** Every job, started in beforeAll; each test awaits its own. */
  const running: Record<string, Promise<JobResult>> = {};
  /** The pull request's comments (github-script's double), one list per diff run. */
  const comments: Record<string, Comment[]> = {};
  const oldComment = (): Comment => ({ id: 1, body: `${MARKER}\nold plan: 3 to add`, user: { type: "Bot" }, html_url: "https://github.com/example/pull/7#issuecomment-1" });
  const seeded = "vm-1234 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGW+r0S3uhGzT7JfMpHhr9SEToqgWTg8SQLYeg96X2fB\n";

  // Either form, so that older workflow files (WORKFLOWS_FROM) rehearse as fast.
  const npmCi = ["npm ci", "npm ci --ignore-scripts"].map((line) => ({ line, with: `cmp package-lock.json ${REPO_ROOT}/package-lock.json && ln -s ${REPO_ROOT}/node_modules node_modules`, why: "this checkout's node_modules, from the same package-lock.json" }));
  const npmTest = { line: "npm test", with: `node --import tsx ${join(FIXTURES, "doubles", "runner", "npm-test.ts")}`, why: "the npm-test double checks the job's tools (the real one would take minutes)" };
  const testRehearsal = { line: "npm run test:rehearsal", with: `node --import tsx ${join(FIXTURES, "doubles", "runner", "npm-test.ts")}`, why: "the real one runs this rehearsal: the npm-test double checks the job's tools" };
  /** Starts a job at once (the jobs run side by side, as on GitHub); the test awaits it. */
  const job = (workflow: string, name: string, options: Partial<JobOptions> = {}): Promise<JobResult> => {
    const run = runJob({
      workflow: join(origin, ".github", "workflows", workflow),
      job: name,
      origin,
      image,
      event: workflow === "pull-request.yml" ? pullRequest : push,
      vars,
      cacheDir: join(root, "cache", `${workflow}-${name}-${(started += 1)}`),
      ...options,
      substitute: [...npmCi, npmTest, testRehearsal, ...(options.substitute ?? [])],
    });
    run.then((r) => results.push(r)).catch(() => undefined);
    return run;
  };
  // The plan runs real Terraform on the stand-ins lib/rehearse.ts makes of the synthesized stack.
  const onStandIns = (workspace: string) => {
    const file = join(workspace, "cdktf.out", "stacks", "infra", "cdk.tf.json");
    writeFileSync(file, JSON.stringify(rehearsalConfig(JSON.parse(readFileSync(file, "utf8"))).config));
  };
  const deploy = (secrets: Record<string, string>): Partial<JobOptions> => {
    const registry = join(root, "registry-bin");
    if (!existsSync(registry)) {
      mkdirSync(registry);
      symlinkSync(execFileSync("sh", ["-c", "command -v docker-registry"], { encoding: "utf8" }).trim(), join(registry, "docker-registry"));
    }
    // known_hosts from an earlier deploy, in this job's state bucket.
    const gcsDir = join(root, "gcs", `deploy-${(started += 1)}`);
    mkdirSync(dirname(join(gcsDir, KEYS_OBJECT)), { recursive: true });
    writeFileSync(join(gcsDir, KEYS_OBJECT), seeded);
    return {
      secrets,
      gcsDir,
      substitute: [
        {
          line: "npx cdktf deploy infra --auto-approve",
          with: `PATH="${registry}:$PATH" HOST_DOUBLE_SSHD_PORT=${sshd.port} HOST_DOUBLE_SSHD_USER=${sshd.user} npm run --silent rehearse -- --fresh`,
          why: "the Terraform rehearsal: stand-ins for Google, the real steps, hosts that log in through real OpenSSH; its registry stands in for Artifact Registry",
        },
      ],
      skip: [{ step: "Let the runner user open /dev/kvm", why: "it writes this machine's udev rules" }],
    };
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "workflow-rehearsal-"));
    origin = join(root, "origin");
    const author = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };
    const git = (...args: string[]) => execFileSync("git", ["-C", origin, ...args], { env: { ...process.env, ...author } });
    execFileSync("git", ["clone", "--quiet", REPO_ROOT, origin]);
    if (WORKFLOWS_FROM && existsSync(WORKFLOWS_FROM)) cpSync(WORKFLOWS_FROM, join(origin, ".github", "workflows"), { recursive: true });
    else if (WORKFLOWS_FROM) git("checkout", WORKFLOWS_FROM, "--", ".github/workflows");
    const flake = fixtureFlake();
    cpSync(flake.dir, join(origin, "flake"), { recursive: true });
    flake.cleanup();
    const settings = {
      ...baseSettings({ hosts: { vm: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", runsOciImages: ["ingest"] } } }),
      flake: "./flake",
      backend: { type: "gcs", bucket: "test-project-tfstate" },
      ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" } },
    };
    writeFileSync(join(origin, "infra.json"), JSON.stringify(settings, null, 2));
    // What a user does once (docs/github.md): pin, and commit the lock.
    git("add", "-A");
    symlinkSync(join(REPO_ROOT, "node_modules"), join(origin, "node_modules"));
    execFileSync("npm", ["run", "--silent", "pin"], { cwd: origin, env: { ...process.env, ...NIX_ENV }, stdio: "ignore" });
    rmSync(join(origin, "node_modules"));
    git("add", "-A");
    git("commit", "--quiet", "-m", "the rehearsal's project");
    const base = git("rev-parse", "HEAD").toString().trim();
    // The pull request's change: host vm's services (a new system, the same image), pinned again.
    const inputsFile = join(origin, "flake", "inputs.json");
    const inputs = JSON.parse(readFileSync(inputsFile, "utf8"));
    inputs.configurations.vm.services = "postgresql pipeline";
    writeFileSync(inputsFile, JSON.stringify(inputs, null, 2));
    symlinkSync(join(REPO_ROOT, "node_modules"), join(origin, "node_modules"));
    execFileSync("npm", ["run", "--silent", "pin"], { cwd: origin, env: { ...process.env, ...NIX_ENV }, stdio: "ignore" });
    rmSync(join(origin, "node_modules"));
    git("commit", "--quiet", "-am", "the pull request: vm runs the pipeline too");
    pullRequest.payload.pull_request.head.sha = git("rev-parse", "HEAD").toString().trim();
    // What GitHub checks out (refs/pull/7/merge, github.sha): a merge commit of the head into the
    // base, the base its first parent. So github.sha is not the head's, as on GitHub.
    git("reset", "--quiet", "--hard", base);
    git("merge", "--quiet", "--no-ff", "-m", "Merge the pull request into the base", pullRequest.payload.pull_request.head.sha);
    image = runnerImage(join(root, "image"));
    sshd = await startSshd();

    running.test = job("pull-request.yml", "test");
    running.pinCheck = job("pull-request.yml", "pin-check");
    // A later commit whose tests fail: the earlier plan comment must not stay as if it held.
    comments.testsFailed = [oldComment()];
    running.testsFailed = job("pull-request.yml", "diff", { comments: comments.testsFailed, needs: { test: "failure" } });
    for (const plan of ["planned", "failed"]) {
      comments[plan] = [oldComment()];
      running[plan] = job("pull-request.yml", "diff", {
        comments: comments[plan],
        before: { "Plan the stacks with remote state": onStandIns },
        substitute:
          plan === "failed"
            ? [{ line: 'terraform -chdir="$dir" plan -input=false -lock=false -out=plan.tfplan', with: 'echo "Error: googleapi: Error 403 (plan failure double)" >&2; false', why: "a plan that fails" }]
            : [],
      });
    }
    // The deploy workflow's job that runs the tests (verify; before the split, deploy itself).
    const workflow = parse(readFileSync(join(origin, ".github", "workflows", "deploy.yml"), "utf8"));
    const tests = Object.keys(workflow.jobs).find((j) => workflow.jobs[j].steps.some((s: { run?: string }) => s.run === "npm test"))!;
    running.verify = job("deploy.yml", tests, tests === "deploy" ? deploy({}) : {});
    const noKey = deploy({});
    noKeyBucket = noKey.gcsDir!;
    running.noKey = job("deploy.yml", "deploy", noKey);
    running.withKey = job("deploy.yml", "deploy", deploy({ DEPLOY_SSH_KEY: readFileSync(sshd.clientKey, "utf8") }));
    for (const run of Object.values(running)) run.catch(() => undefined);
  }, TIMEOUT);
  afterAll(async () => {
    await Promise.allSettled(Object.values(running));
    // WORKFLOW_REHEARSAL_LOGS=<dir>: every job's log, step by step with times.
    if (process.env.WORKFLOW_REHEARSAL_LOGS) for (const [name, run] of Object.entries(running)) writeFileSync(join(process.env.WORKFLOW_REHEARSAL_LOGS, `${name}.log`), (await run).log);
    for (const r of results) r.cleanup();
    await sshd?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  }, TIMEOUT);

  /** The log when the job's conclusion is not the expected one, so a failure shows why. */
  const expectConclusion = (result: JobResult, conclusion: string) => expect(result.conclusion === conclusion ? conclusion : result.log).toBe(conclusion);

  describe("pull-request.yml", () => {
    test("test: installs the tools the tests drive, so with CI=true the suite runs them all", async () => {
      const result = await running.test;
      expectConclusion(result, "success");
      expect(result.step("npm test").output).toMatch(/npm test double: all \d+ tools present/);
    }, TIMEOUT);

    test("pin-check: passes with the committed lock; without one, says in one line what to do", async () => {
      const result = await running.pinCheck;
      expectConclusion(result, "success");
      expect(result.step("npm run pin -- --check").output).toContain("infra.lock.json is up to date");
      rmSync(join(result.workspace, "infra.lock.json"));
      const missing = spawnSync("npm", ["run", "--silent", "pin", "--", "--check"], { cwd: result.workspace, encoding: "utf8" });
      expect(missing.stderr.trim()).toBe("error: infra.lock.json does not exist, so there is nothing to check against; run `npm run pin` and commit infra.lock.json (docs/github.md)");
    }, TIMEOUT);

    test("diff: plans, summarizes, says what changed inside the hosts against the base, and updates the one sticky comment", async () => {
      expectConclusion(await running.planned, "success");
      expect(comments.planned).toHaveLength(1);
      const body = comments.planned[0].body;
      expect(body.startsWith(MARKER)).toBe(true);
      expect(body).not.toContain("old plan");
      expect(body).toMatch(/to add/);
      // Below the plan: host vm changed against the base commit (a git worktree of it), its image did not.
      expect(body.indexOf("### Inside the hosts and images")).toBeGreaterThan(body.indexOf("to add"));
      expect(body).toMatch(/<summary>Host <code>vm<\/code>: /);
      expect(body).toMatch(/Unchanged: image <code>base<\/code>/);
      // The whole summary is on the run's page too (the comment is cut when too long).
      expect((await running.planned).summary).toBe(body);
    }, TIMEOUT);

    test("diff: a failed plan replaces the comment with 'plan failed' and a link to the run", async () => {
      expectConclusion(await running.failed, "failure");
      expect(comments.failed).toHaveLength(1);
      expect(comments.failed[0].body).toMatch(new RegExp(`^${MARKER}\\n\\*\\*plan failed\\*\\*: .*See \\[the run\\]\\(https://github\\.com/example/nixos-gce-cdktf/actions/runs/\\d+\\)`));
      // The pull request's head commit, not github.sha (the merge commit, which the author never saw).
      expect(comments.failed[0].body).toContain(`(${pullRequest.payload.pull_request.head.sha.slice(0, 7)})`);
    }, TIMEOUT);

    test("diff after failed tests: plans nothing, and replaces the earlier comment with 'plan failed'", async () => {
      const result = await running.testsFailed;
      expectConclusion(result, "failure");
      // The checkout holds the comment's script (.github/scripts/plan-comment.cjs).
      expect(result.steps.filter((s) => s.outcome !== "skipped").map((s) => s.name)).toEqual(["actions/checkout", "Stop when the tests failed", "Post or update the plan comment"]);
      expect(comments.testsFailed).toHaveLength(1);
      expect(comments.testsFailed[0].body).toMatch(new RegExp(`^${MARKER}\\n\\*\\*plan failed\\*\\*: `));
    }, TIMEOUT);
  });

  describe("deploy.yml", () => {
    test("the tests run in a job that cannot mint an OIDC token, and pass with the backend and pin checks", async () => {
      const result = await running.verify;
      expect(result.step("npm test").output).not.toContain("can mint an OIDC token");
      expectConclusion(result, "success");
    }, TIMEOUT);

    test("deploy without the key: fails before anything is applied; the keys it pulled go back, and the bucket keeps them", async () => {
      const result = await running.noKey;
      expect(result.conclusion).toBe("failure");
      expect(result.step("Deploy").output).toContain("no DEPLOY_SSH_KEY secret");
      expect(existsSync(join(result.workspace, ".infra", "rehearsal"))).toBe(false);
      expect(readFileSync(join(result.workspace, ".infra", "known_hosts", "infra"), "utf8")).toBe(seeded);
      expect(result.step("Save the host keys").output).toBe(`saved .infra/known_hosts/infra to gs://${KEYS_OBJECT}`);
      expect(readFileSync(join(noKeyBucket, KEYS_OBJECT), "utf8")).toBe(seeded);
    }, TIMEOUT);

    // The Actions cache, which held the keys before, dropped them after a week unused; and
    // a re-run could not save under the key its first attempt had taken. The bucket has neither.
    test("host keys a deploy records go to the state bucket, and the next deploy's pull brings them back", async () => {
      const steps = parse(readFileSync(join(origin, ".github", "workflows", "deploy.yml"), "utf8")).jobs.deploy.steps as { name?: string; run?: string; uses?: string }[];
      const needed = ["actions/checkout", "npm ci --ignore-scripts", "google-github-actions/setup-gcloud", "Pull the recorded host keys", "Save the host keys"];
      const skip = steps
        .map((s) => s.name ?? (s.run ? s.run.split("\n")[0] : String(s.uses).split("@")[0]))
        .filter((name) => !needed.includes(name))
        .map((step) => ({ step, why: "only the host keys' trip through the state bucket is rehearsed here" }));
      const gcsDir = join(root, "gcs", "deploy-twice");
      mkdirSync(gcsDir, { recursive: true });
      const pulls: string[] = [];
      for (const run of [1, 2]) {
        // What ssh's accept-new does on first contact with host vm-<run>.
        const record = (workspace: string) => {
          mkdirSync(join(workspace, ".infra", "known_hosts"), { recursive: true });
          appendFileSync(join(workspace, ".infra", "known_hosts", "infra"), `vm-${run} ssh-ed25519 AAAA${run}\n`);
        };
        const result = await runJob({ workflow: join(origin, ".github", "workflows", "deploy.yml"), job: "deploy", origin, image, event: push, vars, cacheDir: join(root, "cache", `deploy-twice-${run}`), gcsDir, skip, substitute: npmCi, before: { "Save the host keys": record } });
        results.push(result);
        expectConclusion(result, "success");
        pulls.push(result.step("Pull the recorded host keys").output);
      }
      expect(pulls).toEqual([`none recorded yet at gs://${KEYS_OBJECT}: this deploy records each host's key on first contact`, `pulled gs://${KEYS_OBJECT} to .infra/known_hosts/infra`]);
      expect(readFileSync(join(gcsDir, KEYS_OBJECT), "utf8")).toBe("vm-1 ssh-ed25519 AAAA1\nvm-2 ssh-ed25519 AAAA2\n");
    }, TIMEOUT);

    test("deploy with the key: the hosts let deploy-rs in, and the key never touches the disk or the log", async () => {
      const result = await running.withKey;
      expectConclusion(result, "success");
      expect(result.step("Deploy").output).toMatch(/rehearse: {3}deploy +ran 1 +1 created/);
      // Real ssh recorded the host's key on first contact.
      expect(readFileSync(join(result.workspace, ".infra", "rehearsal", "state", "known_hosts", "infra"), "utf8")).toMatch(/^vm-\S+ ssh-ed25519 /m);
      const body = readFileSync(sshd.clientKey, "utf8").split("\n")[1];
      const grep = spawnSync("grep", ["-rlF", "--exclude-dir=node_modules", "--exclude-dir=.git", body, join(result.workspace, "..")], { encoding: "utf8" });
      expect(grep.stdout).toBe("");
      expect(result.log).not.toContain(body);
    }, TIMEOUT);
  });
});
