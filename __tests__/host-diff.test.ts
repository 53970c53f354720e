/**
 * host-diff: names and versions as nvd parses them, the Markdown's cap, and
 * real Nix on two copies of fixtures/host-diff (base and head), whose
 * derivations are never built.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { parseSettings } from "../lib/settings.js";
import { closureOf, derivationGraph, hostDiff } from "../tools/host-diff-nix.js";
import { diffDerivations, type HostDiffReport, parseDrvName, renderJson, renderMarkdown } from "../tools/host-diff.js";
import { describeWithNix, type FixtureFlake, fixtureFlake, NIX_ENV, nixSpy, REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";

const GIT_ENV = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };

/** The `run:` script of the pull-request workflow's step named `name` (a block scalar, or one line). */
function workflowStep(name: string): string {
  const lines = readFileSync(join(REPO_ROOT, ".github", "workflows", "pull-request.yml"), "utf8").split("\n");
  const start = lines.findIndex((l) => l.trim() === `- name: ${name}`);
  const run = lines.findIndex((l, i) => i > start && /^\s+run: /.test(l));
  if (start < 0 || run < 0) throw new Error(`no step "${name}" with a run: script`);
  const indent = lines[run].indexOf("run:");
  const inline = lines[run].trim().slice("run: ".length);
  if (inline !== "|") return inline;
  const body: string[] = [];
  for (const line of lines.slice(run + 1)) {
    if (line.trim() !== "" && line.search(/\S/) <= indent) break;
    body.push(line);
  }
  return body.map((l) => l.slice(indent + 2)).join("\n");
}

test.each([
  ["postgresql-16.4", "postgresql", "16.4"],
  ["/nix/store/d9180l5cg1kafbj26s4blxa26azz7bci-jq-1.7.1.drv", "jq", "1.7.1"],
  ["python3.12-requests-2.32.3", "python3.12-requests", "2.32.3"],
  ["openssh-9.8p1", "openssh", "9.8p1"],
  ["unit-sshd.service", "unit-sshd.service", ""],
  ["etc-x11", "etc-x11", ""],
])("parseDrvName(%s): name %s, version %s", (drv, name, version) => {
  expect(parseDrvName(drv)).toEqual({ name, version });
});

// Only Nix 2.8 runs here; the later shapes as Nix's source writes them (src/nix/derivation-show.cc,
// doc/manual/source/protocols/json/schema/derivation-v3.yaml and -v5.yaml).
test.each([
  ["store paths, inputDrvs (Nix 2.8)", { "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-sys.drv": { inputDrvs: { "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv": ["out"] } }, "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv": { inputDrvs: {} } }],
  ["base names, inputDrvs (format 3)", { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-sys.drv": { version: 3, inputDrvs: { "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv": ["out"] } }, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv": { version: 3, inputDrvs: {} } }],
  ["wrapped in { version, derivations }, inputs.drvs (Nix master)", { version: 4, derivations: { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-sys.drv": { inputs: { srcs: [], drvs: { "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv": { outputs: ["out"], dynamicOutputs: {} } } } }, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv": { inputs: { srcs: [], drvs: {} } } } }],
])("the derivation graph from `nix derivation show -r` (%s)", (_shape, json) => {
  expect([...closureOf(derivationGraph(json), "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-sys.drv")].sort()).toEqual([
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-sys.drv",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-jq-1.7.drv",
  ]);
});

test("--json: every object's keys sorted; added, removed and changed sorted by name", () => {
  const drvs = (...names: string[]) => new Set(names.map((n) => `/nix/store/${"a".repeat(32)}-${n}.drv`));
  const diff = diffDerivations(drvs("zlib-1.3", "redis-7.2", "bash-5.2", "awk-1.0"), drvs("zsh-5.9", "zlib-1.3.1", "jq-1.7", "bash-5.3"));
  const report: HostDiffReport = { images: {}, hosts: { vm: { status: "changed", ...diff }, a: { status: "unchanged" } } };
  const expected = {
    hosts: {
      a: { status: "unchanged" },
      vm: {
        added: [{ name: "jq", version: "1.7" }, { name: "zsh", version: "5.9" }],
        changed: [{ from: "5.2", name: "bash", to: "5.3" }, { from: "1.3", name: "zlib", to: "1.3.1" }],
        otherChanged: 0,
        removed: [{ name: "awk", version: "1.0" }, { name: "redis", version: "7.2" }],
        status: "changed",
      },
    },
    images: {},
  };
  expect(renderJson(report)).toBe(`${JSON.stringify(expected, null, 2)}\n`);
});

test("an entry lists at most maxLines packages and names at most maxLines hosts, then says how many more", () => {
  const added = ["a", "b", "c", "d", "e"].map((name) => ({ name, version: "1.0" }));
  const changed = { status: "changed", added, removed: [], changed: [], otherChanged: 0 } as const;
  const report: HostDiffReport = { hosts: { h1: changed, h2: changed, h3: changed, h4: changed }, images: {} };
  const markdown = renderMarkdown(report, { maxLines: 3 });
  expect(markdown).toContain("<summary>Hosts <code>h1</code>, <code>h2</code>, <code>h3</code> and 1 more: 5 added</summary>");
  expect(markdown).toContain("- added `c` 1.0\n- … and 2 more\n");
  expect(markdown).not.toContain("`d`");
});

test("a --base-config that cannot be read is named by its flag, not INFRA_CONFIG (said before any evaluation: no nix here)", async () => {
  const work = mkdtempSync(join(tmpdir(), "host-diff-base-config-"));
  try {
    writeFileSync(join(work, "infra.json"), JSON.stringify(baseSettings()));
    // A PATH of node alone: the evaluation after the line fails at once.
    mkdirSync(join(work, "bin"));
    symlinkSync(process.execPath, join(work, "bin", "node"));
    const run = await execa(process.execPath, ["--import", "tsx", "bin/host-diff.ts", "--base", ".", "--base-config", work], {
      cwd: REPO_ROOT,
      env: { INFRA_CONFIG: join(work, "infra.json"), PATH: join(work, "bin") },
      reject: false,
    });
    expect(run.stderr).toContain(`compared: ${work}: 1 problem(s)\n  is a directory; --base-config names a JSON file, such as examples/offline.json\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

describeWithNix("host-diff with real Nix", () => {
  let base: FixtureFlake;
  let head: FixtureFlake;
  let work: string;
  const host = (nixosConfiguration: string) => ({ nixosConfiguration, image: "base", machineType: "e2-small" });
  const settingsInput = () =>
    baseSettings({
      flake: head.ref,
      // a and vm run one configuration, b its twin with the same changes; c is unchanged; d is new.
      hosts: { a: host("vm"), vm: host("vm"), b: host("vm2"), c: host("worker"), d: host("new") },
    });

  beforeAll(() => {
    base = fixtureFlake("host-diff-base-", "host-diff");
    head = fixtureFlake("host-diff-head-", "host-diff");
    const inputs = head.readInputs();
    inputs.salt = base.readInputs().salt;
    for (const name of ["vm", "vm2"]) {
      // A version bump, a package added, one removed, and a unit changed.
      inputs.configurations[name] = { packages: { postgresql: "16.6", jq: "1.7", openssh: "9.8p1" }, units: { postgresql: "max_connections=200" } };
    }
    // The image: a change with no version change.
    inputs.configurations["gce-base"].units.sshd = "ExecStart=sshd -D";
    inputs.configurations.new = { packages: { hello: "2.12" }, units: {} };
    head.writeInputs(inputs);
    work = mkdtempSync(join(tmpdir(), "host-diff-"));
  });
  afterAll(() => {
    base?.cleanup();
    head?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  test("each host and image: unchanged, new or its changes; two evaluations and one derivation read; nothing built", async () => {
    const spy = nixSpy();
    const path = process.env.PATH;
    process.env.PATH = `${spy.binDir}:${path}`;
    Object.assign(process.env, NIX_ENV);
    let report;
    try {
      report = await hostDiff(parseSettings(settingsInput()), { base: base.ref, projectRoot: work, log: () => {} });
    } finally {
      process.env.PATH = path;
    }
    const calls = spy.calls();
    spy.cleanup();
    const changes = {
      status: "changed",
      added: [{ name: "jq", version: "1.7" }],
      removed: [{ name: "redis", version: "7.2.4" }],
      changed: [{ name: "postgresql", from: "16.4", to: "16.6" }],
      otherChanged: 2, // the unit and the system
    };
    expect(JSON.parse(renderJson(report))).toEqual({
      hosts: { a: changes, vm: changes, b: changes, c: { status: "unchanged" }, d: { status: "new" } },
      images: { base: { status: "changed", added: [], removed: [], changed: [], otherChanged: 3 } },
    });
    expect(renderMarkdown(report as HostDiffReport)).toMatchSnapshot();

    expect(calls.map((argv) => argv.filter((a) => ["eval", "show-derivation", "build"].includes(a)))).toEqual([["eval"], ["eval"], ["show-derivation"]]);
    expect(calls.at(-1)?.filter((a) => a.endsWith(".drv"))).toHaveLength(6); // base and head of vm, vm2 and the image (a shares vm's)
    const outPath = execFileSync("nix", ["eval", "--raw", `${head.ref}#nixosConfigurations.vm.config.system.build.toplevel.outPath`], {
      env: { ...process.env, ...NIX_ENV },
      encoding: "utf8",
    });
    expect(existsSync(outPath)).toBe(false);
  });

  test("with the base's settings: a host the base ran with another configuration is compared with that one; one they lack is new", async () => {
    process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
    const settings = parseSettings(baseSettings({ flake: head.ref, hosts: { moved: host("worker"), added: host("worker") } }));
    const baseOnes = parseSettings(baseSettings({ flake: base.ref, hosts: { moved: host("vm") } }));
    const report = await hostDiff(settings, { base: base.ref, baseSettings: baseOnes, projectRoot: work, log: () => {} });
    if ("baseError" in report) throw new Error(report.baseError);
    expect(report.hosts.moved.status).toBe("changed");
    expect(report.hosts.added).toEqual({ status: "new" });
  });

  test("a flake that imports from a derivation is refused, not built during the evaluation", async () => {
    const ifd = fixtureFlake("host-diff-ifd-", "host-diff");
    try {
      const inputs = ifd.readInputs();
      inputs.configurations.vm.importFromDerivation = true;
      ifd.writeInputs(inputs);
      process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
      const settings = parseSettings(baseSettings({ flake: ifd.ref, hosts: { vm: host("vm") } }));
      await expect(hostDiff(settings, { base: ifd.ref, projectRoot: work, log: () => {} })).rejects.toThrow(/allow-import-from-derivation/);
      const outPath = execFileSync("nix", ["eval", "--raw", `${ifd.ref}#importFromDerivation.outPath`], { env: { ...process.env, ...NIX_ENV }, encoding: "utf8" });
      expect(existsSync(outPath)).toBe(false);
    } finally {
      ifd.cleanup();
    }
  });

  test("a base that does not evaluate: one line on stdout, Nix's error on stderr, exit 0 so the comment posts", async () => {
    const broken = fixtureFlake("host-diff-broken-", "host-diff");
    try {
      broken.writeInputs({ ...broken.readInputs(), broken: true });
      const file = join(work, "infra.json");
      writeFileSync(file, JSON.stringify(settingsInput()));
      // A base settings file that does not exist is left aside too, named by its flag (not INFRA_CONFIG).
      const run = await execa("node", ["--import", "tsx", "bin/host-diff.ts", "--base", broken.ref, "--base-config", "/nonexistent/infra.json"], {
        cwd: REPO_ROOT,
        env: { ...NIX_ENV, INFRA_CONFIG: file },
        reject: false,
      });
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toBe("**Inside the hosts and images:** not compared, because the base flake did not evaluate (Nix's error is in the job log).");
      expect(run.stderr).toContain("fixture: base broken on purpose");
      expect(run.stderr).toContain("compared: --base-config /nonexistent/infra.json: does not exist\n");
    } finally {
      broken.cleanup();
    }
  });

  // Both forms of a flake at the repository's root: the base is the worktree's, not the head's again.
  test.each([".", "path:."])("the pull-request workflow's steps (flake %s): a worktree of the base commit, compared, appended under the plan summary", async (flake) => {
    // A project whose flake is its git repository's root, as the workflow's is; the program linked in, untracked.
    const repo = mkdtempSync(join(tmpdir(), "host-diff-repo-"));
    const runnerTemp = mkdtempSync(join(tmpdir(), "host-diff-runner-"));
    try {
      const git = (...args: string[]) => execa("git", ["-C", repo, ...args], { env: GIT_ENV });
      for (const file of ["flake.nix", "inputs.json"]) writeFileSync(join(repo, file), readFileSync(join(base.dir, file)));
      writeFileSync(join(repo, "infra.json"), JSON.stringify({ ...settingsInput(), flake }));
      await git("init", "-q");
      await git("add", "-A");
      await git("commit", "-qm", "base");
      writeFileSync(join(repo, "inputs.json"), readFileSync(join(head.dir, "inputs.json")));
      await git("commit", "-qam", "head");
      for (const entry of ["package.json", "tsconfig.json", "node_modules", "bin", "lib", "tools"]) symlinkSync(join(REPO_ROOT, entry), join(repo, entry));
      writeFileSync(join(repo, "summary.md"), "<!-- plan summary -->\n## Terraform plan\n");

      // The step takes the base as HEAD's first parent (the merge commit's, on GitHub).
      const env = { ...NIX_ENV, RUNNER_TEMP: runnerTemp };
      const compare = await execa("bash", ["-e", "-c", workflowStep("Compare hosts and images with the base")], { cwd: repo, env, reject: false });
      if (compare.exitCode !== 0) throw new Error(compare.stderr);
      await execa("bash", ["-e", "-c", workflowStep("Add the host diff to the comment")], { cwd: repo, env });
      const summary = readFileSync(join(repo, "summary.md"), "utf8");
      expect(summary).toMatch(/^<!-- plan summary -->\n## Terraform plan\n\n### Inside the hosts and images\n/);
      expect(summary).toContain("Hosts <code>a</code>, <code>b</code>, <code>vm</code>: 1 version change, 1 added, 1 removed, 2 other changed derivations");
    } finally {
      rmSync(repo, { recursive: true, force: true });
      rmSync(runnerTemp, { recursive: true, force: true });
    }
  });
});
