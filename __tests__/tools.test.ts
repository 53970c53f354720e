/**
 * What a missing tool does to the suite: outside CI its tests are skipped
 * and the suite name says why; with CI=true they fail. Runs jest itself on a
 * real test file with a PATH that has no nix.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./helpers/nix.js";
import { findTool } from "./helpers/tools.js";

describe("a missing tool", () => {
  let bin: string;
  beforeAll(() => {
    // Only what jest and the tool lookup need: node and sh, no nix.
    bin = mkdtempSync(join(tmpdir(), "no-nix-bin-"));
    symlinkSync(process.execPath, join(bin, "node"));
    symlinkSync(findTool("sh")!, join(bin, "sh"));
  });
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  const jest = (ci: string) =>
    spawnSync(process.execPath, [join(REPO_ROOT, "node_modules", "jest", "bin", "jest.js"), "__tests__/resolver.test.ts", "--ci", "--verbose"], {
      cwd: REPO_ROOT,
      env: { ...process.env, PATH: bin, CI: ci, NODE_OPTIONS: "--experimental-vm-modules" },
      encoding: "utf8",
    });

  test("outside CI: its tests are skipped and the suite name says why", () => {
    const run = jest("");
    expect(run.status).toBe(0);
    expect(run.stderr).toContain("resolver with real Nix [SKIPPED: nix not found (apt-get install nix-bin; .ci/run installs the Debian ones)]");
  });

  test("with CI=true: the run fails, naming the tool", () => {
    const run = jest("true");
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("CI=true and nix not found");
    expect(run.stderr).toContain("in CI a missing tool fails the run instead of skipping");
  });
});
