/**
 * What a missing tool does to the suite: outside CI its tests are skipped
 * and the suite name says why; with CI=true they fail. Runs jest itself on a
 * real test file with a PATH that has no nix.
 */
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "./helpers/nix.js";
import { findTool } from "./helpers/tools.js";

describe("a missing tool", () => {
  // Only what jest and the tool lookup need: node and sh, no nix. Made here, not in
  // beforeAll: jest starts concurrent tests before any hook runs.
  const bin = mkdtempSync(join(tmpdir(), "no-nix-bin-"));
  symlinkSync(process.execPath, join(bin, "node"));
  symlinkSync(findTool("sh")!, join(bin, "sh"));
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  const jest = (ci: string) =>
    execa(process.execPath, [join(REPO_ROOT, "node_modules", "jest", "bin", "jest.js"), "__tests__/resolver.test.ts", "--ci", "--verbose"], {
      cwd: REPO_ROOT,
      env: { PATH: bin, CI: ci, NODE_OPTIONS: "--experimental-vm-modules" },
      reject: false,
    });

  test.concurrent("outside CI: its tests are skipped and the suite name says why", async () => {
    const run = await jest("");
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toContain("resolver with real Nix [SKIPPED: nix not found (apt-get install nix-bin; .ci/run installs the Debian ones)]");
  });

  test.concurrent("with CI=true: the run fails, naming the tool", async () => {
    const run = await jest("true");
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain("CI=true and nix not found");
    expect(run.stderr).toContain("in CI a missing tool fails the run instead of skipping");
  });
});
