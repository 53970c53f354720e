/** The app end to end: settings file → one nix eval → cdk.tf.json. */
import { closeSync, copyFileSync, fstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeWithNix, fixtureFlake, NIX_ENV, nixSpy, REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";
import { runSynth } from "./helpers/synth.js";

describe("app errors", () => {
  test("bad settings exit non-zero before synthesis, one line per problem, no stack trace", async () => {
    const raw = baseSettings();
    raw.hosts!.vm.image = "bse";
    const run = await runSynth({ ...raw, zone: "nowhere" });
    try {
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toMatch(/^error: .*infra\.json: 2 problem\(s\)\n {2}zone: must be a zone such as europe-west1-b \(got "nowhere"\)\n {2}hosts\.vm\.image: no image "bse" \(known: base\)$/);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    } finally {
      run.cleanup();
    }
  });

  test("an unknown INFRA_RESOLVE value is named", async () => {
    const run = await runSynth(baseSettings(), { INFRA_RESOLVE: "lock" });
    run.cleanup();
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toBe('error: INFRA_RESOLVE is "lock"; use "eval" (default, runs nix eval) or "pinned" (reads the lock file)');
  });
});

describe("the app command, bin/synth.js (a copy beside a two-file app)", () => {
  let dir: string;
  const bundle = () => join(dir, "dist", "main.js");
  const run = async (...args: string[]) => {
    const { execa } = await import("execa");
    return (await execa("node", [join(dir, "bin", "synth.js"), ...args], { cwd: dir })).stdout;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "synth-launcher-"));
    mkdirSync(join(dir, "bin"));
    copyFileSync(join(REPO_ROOT, "bin", "synth.js"), join(dir, "bin", "synth.js"));
    symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"));
    writeFileSync(join(dir, "package.json"), '{"type": "module"}');
    writeFileSync(join(dir, "main.ts"), 'import { value } from "./value.js";\nconsole.log(value);\n');
    writeFileSync(join(dir, "value.ts"), "export const value: number = 1;\n");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("bundles when a source or esbuild's version changed, and only then", async () => {
    expect(await run()).toBe("1");
    const built = statSync(bundle()).ino;
    expect(await run()).toBe("1");
    expect(statSync(bundle()).ino).toBe(built);
    writeFileSync(join(dir, "value.ts"), "export const value: number = 2;\n");
    expect(await run()).toBe("2");
    const rebuilt = statSync(bundle()).ino;
    expect(rebuilt).not.toBe(built);
    const stamp = join(dir, "dist", "main.inputs.json");
    writeFileSync(stamp, JSON.stringify({ ...JSON.parse(readFileSync(stamp, "utf8")), esbuild: "0.0.1" }));
    await run();
    expect(statSync(bundle()).ino).not.toBe(rebuilt);
  });

  test.each([
    ["a source that does not parse", () => writeFileSync(join(dir, "value.ts"), "export const value: number = = 1;\n"), 'error: value.ts:1:29: Unexpected "="'],
    ["no esbuild installed", () => rmSync(join(dir, "node_modules")), "error: esbuild is not installed, and synth bundles main.ts with it: run npm ci (esbuild is a devDependency)"],
  ])("%s: one error line, exit 1, no stack trace", async (_kind, breakIt, line) => {
    breakIt();
    const { execa } = await import("execa");
    const failed = await execa("node", [join(dir, "bin", "synth.js")], { cwd: dir, reject: false });
    expect([failed.exitCode, failed.stderr]).toEqual([1, line]);
  });

  // Two synths that bundled different sources each rename their bundle, then their stamp, into place:
  // interleaved, the bundle of one ends up beside the stamp of the other.
  test("a bundle that is not the one its stamp describes is rebuilt", async () => {
    await run("--build");
    const older = join(dir, "older.js");
    renameSync(bundle(), older);
    writeFileSync(join(dir, "value.ts"), "export const value: number = 2;\n");
    await run("--build");
    renameSync(older, bundle());
    expect(await run()).toBe("2");
  });

  // Two synths in one checkout (npm test's and a user's, or npm run rehearse's) may both rebuild
  // dist/main.js; written in place, the other's node read it truncated (a SyntaxError, or an
  // empty module that exited 0 having synthesized nothing).
  test("--build replaces dist/main.js in one step: a reader that opened the old bundle keeps all of it", async () => {
    await run("--build");
    const before = readFileSync(bundle());
    const reader = openSync(bundle(), "r");
    try {
      await run("--build");
      const old = Buffer.alloc(before.length + 1);
      expect(readSync(reader, old, 0, old.length, 0)).toBe(before.length);
      expect(old.subarray(0, before.length).equals(before)).toBe(true);
      expect(statSync(bundle()).ino).not.toBe(fstatSync(reader).ino);
      // Nothing half-built is left beside it.
      expect(readdirSync(join(dir, "dist")).sort()).toEqual(["main.inputs.json", "main.js"]);
    } finally {
      closeSync(reader);
    }
  });
});

describeWithNix(`npm run synth with a fixture flake`, () => {
  test("starts exactly one nix eval and no nix build, and two runs give byte-identical output", async () => {
    const fixture = fixtureFlake();
    const spy = nixSpy();
    const settings = { ...baseSettings({ flake: fixture.ref }), lockFile: `${fixture.dir}/infra.lock.json` };
    const env = { PATH: `${spy.binDir}:${process.env.PATH}` };
    const first = await runSynth(settings, env);
    const second = await runSynth(settings, env);
    try {
      expect(first.stderr).not.toContain("error");
      expect(first.exitCode).toBe(0);
      expect(second.exitCode).toBe(0);
      // Each call's subcommand (its options come first: --option <name> <value> among them).
      const commands = spy.calls().map((argv) => argv.find((a) => ["eval", "build", "flake", "path-info"].includes(a)) ?? argv.join(" "));
      expect(commands).toEqual(["eval", "eval"]);
      expect(first.stackJson()).toBe(second.stackJson());
      expect(first.stackJson()).not.toContain(process.cwd());
    } finally {
      first.cleanup();
      second.cleanup();
      spy.cleanup();
      fixture.cleanup();
    }
  });
});

describeWithNix(`settings errors come before nix eval`, () => {
  // Each of these once surfaced only after the evaluation, from a construct.
  test("each is one line naming the key, and nix never runs", async () => {
    const fixture = fixtureFlake();
    const spy = nixSpy();
    const r: any = baseSettings({ flake: fixture.ref });
    r.images.base.family = "f".repeat(43);
    r.hosts.vm.sshSourceRanges = [];
    r.ociImages = { a: { package: "p", version: "1" }, "a-digest": { package: "q", version: "1" } };
    r.hosts["h".repeat(57)] = { ...r.hosts.vm, sshSourceRanges: undefined, recreateOnImageChange: true };
    r.hosts.proto = { ...r.hosts.vm, sshSourceRanges: undefined, image: "toString" };
    const settingsRun = await runSynth(r, { PATH: `${spy.binDir}:${process.env.PATH}` });
    // The lock is read only once the settings are valid.
    const lockRun = await runSynth({ ...baseSettings({ flake: fixture.ref }), lockFile: "README.md" }, { PATH: `${spy.binDir}:${process.env.PATH}` });
    const calls = spy.calls();
    for (const run of [settingsRun, lockRun]) run.cleanup();
    spy.cleanup();
    fixture.cleanup();
    expect([settingsRun.exitCode, lockRun.exitCode]).toEqual([1, 1]);
    for (const line of [
      "images.base.family: must be at most 42 characters",
      "hosts.vm.sshSourceRanges: is empty",
      'ociImages.a-digest: gives the Terraform output "oci-a-digest-reference"',
      "recreateOnImageChange: needs a host id of at most 56 characters",
      'hosts.proto.image: no image "toString"',
    ]) {
      expect(settingsRun.stderr).toContain(line);
    }
    expect(lockRun.stderr).toContain("README.md: not valid JSON");
    expect(calls).toEqual([]);
  });
});

describeWithNix(`synth warnings`, () => {
  test("risky settings are printed as warnings naming the construct, once for all the hosts they concern; the last line says what synth wrote where", async () => {
    const fixture = fixtureFlake();
    const raw = baseSettings({ flake: fixture.ref });
    raw.hosts!.vm.sshKeys = [];
    raw.hosts!.vm.sshSourceRanges = ["0.0.0.0/0"];
    raw.hosts!.web = { ...raw.hosts!.vm, sshSourceRanges: undefined };
    raw.images!.base.public = true;
    const run = await runSynth({ ...raw, lockFile: `${fixture.dir}/infra.lock.json` });
    run.cleanup();
    fixture.cleanup();
    expect(run.exitCode).toBe(0);
    expect(run.stderr.split("\n").filter((l) => l.startsWith("warning:"))).toEqual([
      'warning: infra/base-image: image family "nixos-base" is public: every authenticated Google account can use it (images.*.public = true)',
      'warning: infra/vm-vm: host "vm" accepts SSH from the whole internet (sshSourceRanges 0.0.0.0/0)',
      'warning: infra/vm-vm: host "vm" has an external IP on the "default" network, whose default-allow-ssh rule (if not deleted) admits SSH from anywhere; use a dedicated network',
      'warning: 2 hosts (vm, web): has no sshKeys: its deploy cannot log in as "deploy"',
    ]);
    expect(run.stderr.trimEnd().split("\n").at(-1)).toBe(`synth: wrote bootstrap, infra to ${run.outdir}/stacks/`);
  });
});

describeWithNix(`npm run pin`, () => {
  test("writes the lock, then --check names what changed and exits 1", async () => {
    const { execa } = await import("execa");
    const fixture = fixtureFlake();
    const config = join(fixture.dir, "settings.json");
    writeFileSync(config, JSON.stringify({ ...baseSettings({ flake: fixture.ref }), lockFile: join(fixture.dir, "infra.lock.json") }));
    const pin = (...args: string[]) =>
      execa("node", ["--import", "tsx", "bin/pin.ts", ...args], { cwd: REPO_ROOT, env: { ...NIX_ENV, INFRA_CONFIG: config }, reject: false, all: true });
    try {
      const written = await pin();
      expect(written.all).toContain(`wrote ${join(fixture.dir, "infra.lock.json")}`);
      expect((await pin("--check")).exitCode).toBe(0);
      const inputs = fixture.readInputs();
      inputs.configurations.vm.services = "postgresql, pipeline v3";
      fixture.writeInputs(inputs);
      const stale = await pin("--check");
      expect(stale.exitCode).toBe(1);
      expect(stale.all).toMatch(/error: .*infra\.lock\.json is stale; run `npm run pin`:\n {2}hosts\.vm\.toplevel: \/nix\/store\/\w{32}-nixos-system-vm → \/nix\/store\/\w{32}-nixos-system-vm$/);
    } finally {
      fixture.cleanup();
    }
  });
});

describeWithNix(`the cdktf CLI`, () => {
  test("cdktf synth shows the nix eval progress as plain lines, not as [ERROR] (it labels every stderr line so)", async () => {
    const { execa } = await import("execa");
    const outdir = mkdtempSync(join(tmpdir(), "cdktf-cli-"));
    try {
      const run = await execa("npx", ["cdktf", "synth", "--output", outdir], {
        cwd: REPO_ROOT,
        env: { ...NIX_ENV, INFRA_CONFIG: "examples/offline.json", CHECKPOINT_DISABLE: "1" },
        reject: false,
        all: true,
      });
      expect(run.exitCode).toBe(0);
      const progress = String(run.all).split("\n").filter((line) => line.includes("nix eval: "));
      expect(progress.map((line) => line.replace(/^(\x1b\[[0-9;]*[A-Za-z])*/, ""))).toEqual([
        expect.stringMatching(/^nix eval: resolving 1 image\(s\), 1 host\(s\), 2 OCI image\(s\) of flake /),
        expect.stringMatching(/^nix eval: done in \d+\.\d s$/),
      ]);
      expect(readFileSync(join(outdir, "stacks", "infra", "cdk.tf.json"), "utf8")).toContain("google_compute_instance");
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describeWithNix(`the offline example`, () => {
  test("examples/offline.lock.json matches the fixture flake (npm run pin -- --check)", async () => {
    const { execa } = await import("execa");
    const run = await execa("node", ["--import", "tsx", "bin/pin.ts", "--check"], {
      cwd: REPO_ROOT,
      env: { ...NIX_ENV, INFRA_CONFIG: "examples/offline.json" },
      reject: false,
      all: true,
    });
    expect(run.all).toContain("examples/offline.lock.json is up to date");
    expect(run.exitCode).toBe(0);
  });
});
