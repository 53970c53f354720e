/** The resolver against real Nix (Debian's nix-bin) and fixture flakes without inputs. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { lockDifferences, readLock, writeLock } from "../lib/lock.js";
import { attributePaths, NixError, resolveWithNix, trimNixStderr } from "../lib/nix.js";
import { resolveOutputs } from "../lib/resolve.js";
import { describeWithNix, fixtureFlake, type FixtureFlake, NIX_ENV, nixSpy, type NixSpy, REPO_ROOT } from "./helpers/nix.js";
import { baseSettings, settings } from "./helpers/settings.js";

const quiet = () => undefined;

describe("resolver parsing (no Nix needed)", () => {
  test("one attribute path per value, batched for every image, host and OCI image", () => {
    const s = settings({
      hosts: {
        a: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" },
        b: { nixosConfiguration: "worker", image: "base", machineType: "e2-small" },
      },
      ociImages: { ingest: { package: "oci-ingest", version: "1.0.0" } },
    });
    expect(attributePaths(s)).toEqual({
      "images.base.storePath": ["nixosConfigurations", "gce-base", "config", "system", "build", "googleComputeImage", "outPath"],
      "images.base.filePath": ["nixosConfigurations", "gce-base", "config", "image", "filePath"],
      "images.base.nixosLabel": ["nixosConfigurations", "gce-base", "config", "system", "nixos", "label"],
      "hosts.a.toplevel": ["nixosConfigurations", "vm", "config", "system", "build", "toplevel", "outPath"],
      "hosts.b.toplevel": ["nixosConfigurations", "worker", "config", "system", "build", "toplevel", "outPath"],
      "ociImages.ingest.storePath": ["packages", "x86_64-linux", "oci-ingest", "outPath"],
    });
  });

  test("Nix's stderr is kept in its own words, without the --show-trace hint", () => {
    expect(trimNixStderr("error: boom\n(use '--show-trace' to show detailed location information)\n")).toBe("error: boom");
    // Several nix processes at once (no daemon) wait for the store database in turn.
    expect(trimNixStderr("warning: error: SQLite database '/nix/var/nix/db/db.sqlite' is busy\nerror: boom")).toBe("error: boom");
    // Offline, Nix writes one line per download attempt and per substituter before the error.
    const offline = [
      "warning: error: unable to download 'https://cache.nixos.org/nix-cache-info': Couldn't resolve host name (6); retrying in 302 ms",
      "warning: unable to download 'https://cache.nixos.org/nix-cache-info': Couldn't resolve host name (6)",
      "warning: error: unable to download 'https://api.github.com/repos/nixos/nixpkgs/tarball/d351d06': Couldn't resolve host name (6); retrying in 258 ms",
      "error: unable to download 'https://api.github.com/repos/nixos/nixpkgs/tarball/d351d06': Couldn't resolve host name (6)",
    ].join("\n");
    expect(trimNixStderr(offline)).toBe("error: unable to download 'https://api.github.com/repos/nixos/nixpkgs/tarball/d351d06': Couldn't resolve host name (6)");
    const long = Array.from({ length: 40 }, (_, i) => `line ${i}`).join("\n");
    expect(trimNixStderr(long).split("\n")).toHaveLength(26);
  });

  test("a lockFile that is a directory, or in a directory that does not exist, is named with the fix", () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-paths-"));
    try {
      expect(() => readLock(dir, "examples")).toThrow(new NixError('lockFile examples: is a directory; set lockFile to a file path such as "infra.lock.json"'));
      const resolved = { flake: ".", system: "x86_64-linux", images: {}, hosts: {}, ociImages: {} };
      expect(() => writeLock(join(dir, "locks", "infra.lock.json"), resolved)).toThrow(
        new NixError(`lockFile ${dir}/locks/infra.lock.json: cannot write it (its directory ${dir}/locks does not exist); set lockFile to a file path such as "infra.lock.json"`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("lock differences name each changed key", () => {
    const a = { flake: ".", system: "x86_64-linux", images: {}, hosts: { vm: { nixosConfiguration: "vm", toplevel: "/nix/store/a" } }, ociImages: {} };
    const b = { ...a, hosts: { vm: { nixosConfiguration: "vm", toplevel: "/nix/store/b" }, w: { nixosConfiguration: "w", toplevel: "/nix/store/c" } } };
    expect(lockDifferences(a, b)).toEqual([
      "hosts.vm.toplevel: /nix/store/a → /nix/store/b",
      "hosts.w.nixosConfiguration: not in the lock (new)",
      "hosts.w.toplevel: not in the lock (new)",
    ]);
  });
});

describe("lock values are checked like the flake's answers", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "lock-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const good = {
    version: 1,
    flake: ".",
    system: "x86_64-linux",
    images: {
      base: {
        nixosConfiguration: "gce-base",
        storePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-google-compute-image",
        filePath: "nixos-image-25.11.x86_64-linux.raw.tar.gz",
        nixosLabel: "25.11.20260107.d351d06",
      },
    },
    hosts: { vm: { nixosConfiguration: "vm", toplevel: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-vm" } },
    ociImages: {},
  };
  const read = (mutate: (lock: any) => void) => {
    const lock = structuredClone(good);
    mutate(lock);
    writeFileSync(join(dir, "infra.lock.json"), JSON.stringify(lock));
    return () => readLock(join(dir, "infra.lock.json"));
  };

  test("a committed lock written by pin reads back", () => {
    expect(read(() => undefined)()?.images.base.nixosLabel).toBe("25.11.20260107.d351d06");
  });

  test("a lock of another version is named with its version", () => {
    expect(read((l) => (l.version = 2))).toThrow("lockFile " + join(dir, "infra.lock.json") + ": not a lock file written by `npm run pin`: version: must be 1 (got 2); run `npm run pin` to rewrite it");
  });

  test.each([
    ["images.base.filePath", (l: any) => (l.images.base.filePath = '${file("/etc/passwd")}.raw.tar.gz')],
    ["images.base.filePath", (l: any) => (l.images.base.filePath = "../../etc/passwd")],
    ["images.base.nixosLabel", (l: any) => (l.images.base.nixosLabel = "25.11 %{ if true }x%{ endif }")],
    ["images.base.storePath", (l: any) => (l.images.base.storePath = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-${x}")],
    ["hosts.vm.toplevel", (l: any) => (l.hosts.vm.toplevel = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a'b")],
    ["hosts.vm.nixosConfiguration", (l: any) => (l.hosts.vm.nixosConfiguration = "vm$(id)")],
  ])("a hostile %s is refused, naming the key", (key, mutate) => {
    expect(read(mutate)).toThrow(new RegExp(`not a lock file written by \\\`npm run pin\\\`: ${key.replace(/\./g, "\\.")}: .*run \\\`npm run pin\\\` to rewrite it$`));
  });
});

describeWithNix(`resolver with real Nix`, () => {
  let fixture: FixtureFlake;
  let spy: NixSpy;
  const savedPath = process.env.PATH;
  beforeEach(() => {
    fixture = fixtureFlake();
    spy = nixSpy();
    process.env.PATH = `${spy.binDir}:${savedPath}`;
    process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
  });
  afterEach(() => {
    process.env.PATH = savedPath;
    fixture.cleanup();
    spy.cleanup();
  });

  const threeHosts = () =>
    settings({
      flake: fixture.ref,
      hosts: {
        a: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" },
        b: { nixosConfiguration: "worker", image: "base", machineType: "e2-small" },
        c: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" },
      },
    });

  test("several hosts and an image are resolved by exactly one nix eval, and nothing is built", async () => {
    const resolved = await resolveWithNix(threeHosts(), { projectRoot: fixture.dir, log: quiet });
    expect(spy.calls()).toHaveLength(1);
    expect(spy.calls()[0]).toEqual(expect.arrayContaining(["eval", "--json"]));
    expect(spy.calls().flat()).not.toContain("build");
    expect(Object.keys(resolved.hosts)).toEqual(["a", "b", "c"]);
    expect(resolved.hosts.a.toplevel).toMatch(/^\/nix\/store\/[a-z0-9]{32}-nixos-system-vm$/);
    expect(resolved.hosts.c.toplevel).toBe(resolved.hosts.a.toplevel);
    expect(resolved.images.base.storePath).toMatch(/^\/nix\/store\/[a-z0-9]{32}-google-compute-image$/);
    expect(resolved.images.base.filePath).toBe("nixos-image-25.11.19700101.fixture-x86_64-linux.raw.tar.gz");
    expect(resolved.images.base.nixosLabel).toBe("25.11.19700101.fixture");
    expect(existsSync(resolved.images.base.storePath)).toBe(false);
  });

  test("a change to one input changes exactly the paths that depend on it", async () => {
    const before = await resolveWithNix(threeHosts(), { projectRoot: fixture.dir, log: quiet });
    const inputs = fixture.readInputs();
    inputs.configurations.worker.services = "pipeline v2";
    fixture.writeInputs(inputs);
    const afterServices = await resolveWithNix(threeHosts(), { projectRoot: fixture.dir, log: quiet });
    expect(lockDifferences(before, afterServices)).toEqual([`hosts.b.toplevel: ${before.hosts.b.toplevel} → ${afterServices.hosts.b.toplevel}`]);

    inputs.configurations["gce-base"].image = "base v2";
    fixture.writeInputs(inputs);
    const afterImage = await resolveWithNix(threeHosts(), { projectRoot: fixture.dir, log: quiet });
    expect(lockDifferences(afterServices, afterImage)).toEqual([
      `images.base.storePath: ${afterServices.images.base.storePath} → ${afterImage.images.base.storePath}`,
    ]);
  });

  test("a configuration the flake lacks is one line: the settings naming it, and the nearest name the flake has", async () => {
    // Two letters swapped: "broken" is as many substitutions away as "worker", but one swap is one typo.
    const s = settings({ flake: fixture.ref, hosts: { web: { nixosConfiguration: "wroker", image: "base", machineType: "e2-small" } } });
    const error = await resolveWithNix(s, { projectRoot: fixture.dir, log: quiet }).catch((e) => e);
    expect(error).toBeInstanceOf(NixError);
    expect(error.message).toBe(`hosts.web.nixosConfiguration: "wroker" is not a nixosConfiguration of flake "${fixture.ref}"; did you mean "worker"? (known: broken, gce-base, vm, worker)`);
  });

  test("an evaluation error carries Nix's message", async () => {
    const s = settings({ flake: fixture.ref, hosts: { vm: { nixosConfiguration: "broken", image: "base", machineType: "e2-small" } } });
    await expect(resolveWithNix(s, { projectRoot: fixture.dir, log: quiet })).rejects.toThrow(
      new RegExp(`^nix eval of flake "${fixture.ref}" failed:\\nerror: fixture: broken on purpose`),
    );
  });

  test("a flake that imports from a derivation is refused, naming it, and nothing is built at synth", async () => {
    const salt = fixture.readInputs().salt;
    writeFileSync(
      join(fixture.dir, "flake.nix"),
      `{ outputs = { self }: let
          sh = name: script: derivation { inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ]; };
          generated = sh "ifd-${salt}" "echo '\\"generated\\"' > $out";
        in {
          nixosConfigurations.gce-base.config = {
            system.build.googleComputeImage = sh ("google-compute-image-" + import generated) "echo > $out";
            image.filePath = "disk.raw.tar.gz";
            system.nixos.label = "25.11";
          };
        }; }\n`,
    );
    const error = await resolveWithNix(settings({ flake: fixture.ref, hosts: {} }), { projectRoot: fixture.dir, log: quiet }).catch((e) => e);
    expect(error).toBeInstanceOf(NixError);
    expect(error.message).toMatch(new RegExp(`^flake "${fixture.ref}" imports from a derivation \\(/nix/store/\\w+-ifd-${salt}\\.drv\\): evaluating it would build at synth`));
    expect(readdirSync("/nix/store").filter((name) => name.endsWith(`-ifd-${salt}`))).toEqual([]);
  });

  test("a flake whose inputs cannot be fetched says it needs network and what to run offline, without Nix's retries", async () => {
    // An input on a closed loopback port fails as nixpkgs does offline; two attempts give one retry line to drop.
    writeFileSync(
      join(fixture.dir, "flake.nix"),
      '{ inputs.pinned = { url = "http://127.0.0.1:9/nixpkgs.tar.gz"; flake = false; }; outputs = { self, pinned }: { }; }\n',
    );
    process.env.NIX_CONFIG = `${NIX_ENV.NIX_CONFIG}\ndownload-attempts = 2`;
    const error = await resolveWithNix(settings({ flake: fixture.ref }), { projectRoot: fixture.dir, log: quiet }).catch((e) => e);
    expect(error).toBeInstanceOf(NixError);
    const [first, ...rest] = error.message.split("\n");
    expect(first).toBe(
      `nix eval of flake "${fixture.ref}" failed; fetching the flake's inputs needs network access. Offline, synthesize from a committed lock ` +
        "(INFRA_RESOLVE=pinned) or try the offline example (INFRA_CONFIG=examples/offline.json):",
    );
    expect(rest.join("\n")).toMatch(/unable to download 'http:\/\/127\.0\.0\.1:9\/nixpkgs\.tar\.gz'/);
    expect(rest.join("\n")).not.toMatch(/retrying in/);
  });

  test("relative flake paths resolve against the project root", async () => {
    const s = settings({ flake: "." });
    const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: quiet });
    expect(resolved.flake).toBe(".");
    expect(resolved.hosts.vm.toplevel).toMatch(/-nixos-system-vm$/);
  });

  test("2,000 hosts resolve in one nix eval: the request travels in a file, not the environment", async () => {
    const hosts = Object.fromEntries(
      Array.from({ length: 2000 }, (_, i) => [`data-pipeline-worker-${i}`, { nixosConfiguration: i % 2 ? "vm" : "worker", image: "base", machineType: "e2-small" }]),
    );
    const s = settings({ flake: fixture.ref, hosts });
    // Other test files (and other runs on the machine) make request dirs in $TMPDIR at the
    // same time, so this call's own is followed: a nix in front of the spy notes its path.
    const noter = mkdtempSync(join(tmpdir(), "request-noter-"));
    writeFileSync(join(noter, "nix"), `#!/bin/sh\nprintf '%s\\n' "$INFRA_NIX_REQUEST_FILE" >> '${join(noter, "requests")}'\nexec '${join(spy.binDir, "nix")}' "$@"\n`, { mode: 0o755 });
    process.env.PATH = `${noter}:${process.env.PATH}`;
    try {
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: quiet });
      expect(Object.keys(resolved.hosts)).toHaveLength(2000);
      expect(resolved.hosts["data-pipeline-worker-1999"].toplevel).toMatch(/-nixos-system-vm$/);
      expect(resolved.hosts["data-pipeline-worker-0"].toplevel).toMatch(/-nixos-system-worker$/);
      expect(spy.calls()).toHaveLength(1);
      // The request file, in a directory of its own, is gone afterwards.
      const requests = readFileSync(join(noter, "requests"), "utf8").trim().split("\n");
      expect(requests).toEqual([expect.stringMatching(/\/infra-nix-request-[^/]+\/request\.json$/)]);
      expect(existsSync(dirname(requests[0]))).toBe(false);
    } finally {
      rmSync(noter, { recursive: true, force: true });
    }
  });

  test("a progress line announces the evaluation", async () => {
    const lines: string[] = [];
    await resolveWithNix(threeHosts(), { projectRoot: fixture.dir, log: (l) => lines.push(l) });
    expect(lines[0]).toBe(`nix eval: resolving 1 image(s), 3 host(s), 0 OCI image(s) of flake ${fixture.ref} (evaluation only, nothing is built)…`);
    expect(lines[1]).toMatch(/^nix eval: done in \d+\.\d s$/);
  });

  describe("pinned mode", () => {
    let project: string;
    beforeEach(() => {
      project = mkdtempSync(join(tmpdir(), "pinned-"));
    });
    afterEach(() => rmSync(project, { recursive: true, force: true }));

    test("synthesizes from the lock without calling nix", async () => {
      const s = threeHosts();
      const resolved = await resolveWithNix(s, { projectRoot: project, log: quiet });
      writeLock(join(project, s.lockFile), resolved);
      const text = readFileSync(join(project, s.lockFile), "utf8");
      expect(text.indexOf('"hosts"')).toBeLessThan(text.indexOf('"images"'));
      const callsBefore = spy.calls().length;
      process.env.PATH = "/nonexistent";
      const pinned = await resolveOutputs(s, { projectRoot: project, mode: "pinned", log: quiet });
      process.env.PATH = `${spy.binDir}:${savedPath}`;
      expect(spy.calls()).toHaveLength(callsBefore);
      expect(pinned).toEqual(resolved);
      expect(readLock(join(project, s.lockFile))).toEqual(resolved);
    });

    test("a lock that no longer matches the settings is refused, naming the key", async () => {
      const s = threeHosts();
      writeLock(join(project, s.lockFile), await resolveWithNix(s, { projectRoot: project, log: quiet }));
      const changed = settings({ flake: fixture.ref, hosts: { a: { nixosConfiguration: "worker", image: "base", machineType: "e2-small" }, d: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" } } });
      await expect(resolveOutputs(changed, { projectRoot: project, mode: "pinned", log: quiet })).rejects.toThrow(
        'infra.lock.json does not match the settings; run `npm run pin` on a machine with Nix and network access:\n  hosts.a.nixosConfiguration is "worker" in the settings but "vm" in the lock\n  hosts.d is not in the lock',
      );
    });

    test("pinned mode without a lock says how to make one, and that it needs Nix and network", async () => {
      await expect(resolveOutputs(threeHosts(), { projectRoot: project, mode: "pinned", log: quiet })).rejects.toThrow(
        "INFRA_RESOLVE=pinned but infra.lock.json does not exist; run `npm run pin` on a machine with Nix and network access (it evaluates the flake, fetching its inputs), and commit the lock",
      );
    });

    test("npm run pin replaces a lock it cannot read, saying so in one line; pin --check refuses it", async () => {
      writeFileSync(join(project, "infra.json"), JSON.stringify(baseSettings({ flake: fixture.ref })));
      writeFileSync(join(project, "infra.lock.json"), "<<<<<<< HEAD\n");
      const pin = (...args: string[]) =>
        execa("node", ["--import", pathToFileURL(join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href, join(REPO_ROOT, "bin", "pin.ts"), ...args], {
          cwd: project,
          env: { ...NIX_ENV, INFRA_CONFIG: "infra.json" },
          reject: false,
        });
      const check = await pin("--check");
      expect([check.exitCode, check.stderr]).toEqual([1, expect.stringMatching(/^error: lockFile infra\.lock\.json: not valid JSON \(.*\); run `npm run pin` to rewrite it$/)]);
      const written = await pin();
      expect(written.stderr.split("\n").filter((l) => !l.startsWith("nix eval:"))).toEqual([expect.stringMatching(/^pin: lockFile infra\.lock\.json: not valid JSON \(.*\); writing a new one$/)]);
      expect([written.exitCode, written.stdout]).toEqual([0, "wrote infra.lock.json"]);
      expect(readLock(join(project, "infra.lock.json"))?.hosts.vm.toplevel).toMatch(/-nixos-system-vm$/);
    });

    test("eval mode warns when an existing lock is stale", async () => {
      const s = threeHosts();
      writeLock(join(project, s.lockFile), await resolveWithNix(s, { projectRoot: project, log: quiet }));
      const inputs = fixture.readInputs();
      inputs.configurations.vm.services = "postgresql 17";
      fixture.writeInputs(inputs);
      const lines: string[] = [];
      const fresh = await resolveOutputs(s, { projectRoot: project, mode: "eval", log: (l) => lines.push(l) });
      const warning = lines.find((l) => l.startsWith("warning:"));
      expect(warning).toContain("warning: infra.lock.json is stale (2 change(s)); run `npm run pin`:");
      expect(warning).toContain(`hosts.a.toplevel: `);
      expect(warning).toContain(`→ ${fresh.hosts.a.toplevel}`);
      expect(warning).not.toContain("hosts.b.toplevel");
    });
  });

  test("without nix on PATH the error says how to get it", async () => {
    process.env.PATH = "/nonexistent";
    const error = await resolveWithNix(threeHosts(), { projectRoot: fixture.dir, log: quiet }).catch((e) => e);
    expect(error).toBeInstanceOf(NixError);
    expect(error.message).toMatch(/^nix is not installed or not on PATH\. Enter the project's dev shell \(`nix develop`\), install Nix/);
    expect(error.message).toContain("INFRA_RESOLVE=pinned");
  });
});
