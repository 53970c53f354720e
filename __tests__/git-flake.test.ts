/**
 * A flake inside a git repository, as the project's own flake is: synth
 * evaluates it as git+file (tracked files only, like the apply steps' `nix
 * build .#…`), and no store path depends on the commit, so a committed lock
 * stays valid. Real git, real Nix, a fixture flake.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { evalFlakeRef, resolveWithNix } from "../lib/nix.js";
import { describeWithNix, fixtureFlake, type FixtureFlake, NIX_ENV, REPO_ROOT } from "./helpers/nix.js";
import { baseSettings, settings } from "./helpers/settings.js";

const GIT_ENV = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };
const git = (dir: string, ...args: string[]) => execa("git", ["-C", dir, ...args], { env: GIT_ENV });

describe("evalFlakeRef", () => {
  test("a local path inside a git repository becomes git+file with the subdirectory; outside one, path:", () => {
    expect(evalFlakeRef(".", REPO_ROOT)).toBe(`git+file://${REPO_ROOT}`);
    expect(evalFlakeRef("./examples/flake", REPO_ROOT)).toBe(`git+file://${REPO_ROOT}?dir=examples%2Fflake`);
    expect(evalFlakeRef("/", REPO_ROOT)).toBe("path:/");
    expect(evalFlakeRef("path:sub", "/srv/p")).toBe("path:/srv/p/sub");
    expect(evalFlakeRef("github:org/repo", REPO_ROOT)).toBe("github:org/repo");
  });
});

describeWithNix(`a flake in a git repository`, () => {
  let fixture: FixtureFlake;
  beforeEach(async () => {
    fixture = fixtureFlake();
    process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
    await git(fixture.dir, "init", "-q");
    await git(fixture.dir, "add", "-A");
    await git(fixture.dir, "commit", "-qm", "fixture");
  });
  afterEach(() => fixture.cleanup());

  const withOci = (overrides = {}) =>
    baseSettings({
      flake: ".",
      hosts: { a: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" } },
      ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" } },
      ...overrides,
    });

  test("synth sees tracked files only: an untracked file never reaches the store", async () => {
    mkdirSync(join(fixture.dir, "node_modules"));
    writeFileSync(join(fixture.dir, "node_modules", "credentials.json"), "{}");
    const ref = evalFlakeRef(".", fixture.dir);
    expect(ref).toBe(`git+file://${fixture.dir}`);
    const { stdout } = await execa("nix", ["eval", "--impure", "--raw", "--expr", `(builtins.getFlake ${JSON.stringify(ref)}).outPath`], { env: NIX_ENV });
    expect(existsSync(join(stdout, "inputs.json"))).toBe(true);
    expect(existsSync(join(stdout, "node_modules"))).toBe(false);
    const resolved = await resolveWithNix(settings(withOci()), { projectRoot: fixture.dir, log: () => undefined });
    expect(resolved.hosts.a.toplevel).toMatch(/^\/nix\/store\/\w{32}-nixos-system-vm$/);
  });

  test("a shallow clone resolves, as the apply steps' nix build .#… takes it (Nix refuses one without shallow=1)", async () => {
    writeFileSync(join(fixture.dir, "second"), "a second commit, so the clone below is cut short\n");
    await git(fixture.dir, "add", "second");
    await git(fixture.dir, "commit", "-qm", "second");
    const clone = `${fixture.dir}-shallow`;
    await execa("git", ["clone", "-q", "--depth", "1", pathToFileURL(fixture.dir).href, clone]);
    try {
      expect(existsSync(join(clone, ".git", "shallow"))).toBe(true);
      expect(evalFlakeRef(".", clone)).toBe(`git+file://${clone}?shallow=1`);
      const resolved = await resolveWithNix(settings(withOci()), { projectRoot: clone, log: () => undefined });
      const cli = await execa("nix", ["eval", "--raw", ".#nixosConfigurations.vm.config.system.build.toplevel.outPath"], { cwd: clone, env: NIX_ENV });
      expect(resolved.hosts.a.toplevel).toBe(cli.stdout);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  });

  test("npm run pin -- --check passes on a committed lock, and still fails when a configuration changes", async () => {
    writeFileSync(join(fixture.dir, "infra.json"), JSON.stringify(withOci()));
    await git(fixture.dir, "add", "infra.json");
    await git(fixture.dir, "commit", "-qm", "settings");
    const pin = (...args: string[]) =>
      // tsx by absolute URL: node resolves --import from the fixture's cwd, which has no node_modules.
      execa("node", ["--import", pathToFileURL(join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href, join(REPO_ROOT, "bin", "pin.ts"), ...args], {
        cwd: fixture.dir,
        env: { ...NIX_ENV, INFRA_CONFIG: "infra.json" },
        reject: false,
        all: true,
      });
    const written = await pin();
    expect(written.all).toContain("wrote infra.lock.json");
    await git(fixture.dir, "add", "infra.lock.json");
    await git(fixture.dir, "commit", "-qm", "lock");

    const check = await pin("--check");
    expect(check.all).toContain("infra.lock.json is up to date");
    expect(check.exitCode).toBe(0);

    // A commit that touches nothing Nix reads keeps every store path.
    writeFileSync(join(fixture.dir, "README"), "notes\n");
    await git(fixture.dir, "add", "README");
    await git(fixture.dir, "commit", "-qm", "docs");
    expect((await pin("--check")).exitCode).toBe(0);

    const inputs = fixture.readInputs();
    inputs.configurations.vm.services = "postgresql, pipeline v2";
    fixture.writeInputs(inputs);
    await git(fixture.dir, "commit", "-qam", "services");
    const stale = await pin("--check");
    expect(stale.exitCode).toBe(1);
    expect(stale.all).toContain("infra.lock.json is stale; run `npm run pin`:");
    expect(stale.all).toMatch(/hosts\.a\.toplevel: \/nix\/store\/\w{32}-nixos-system-vm → \/nix\/store\/\w{32}-nixos-system-vm/);
    expect(stale.all).not.toContain("ociImages.ingest");
  });
});
