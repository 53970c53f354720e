/** npm run check-backend: the workflows' refusal to deploy with state that dies with the runner. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";

describe("npm run check-backend", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "check-backend-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const run = (settings: unknown) => {
    const file = join(dir, "infra.json");
    writeFileSync(file, JSON.stringify(settings));
    return execa("node", ["--import", "tsx", "bin/check-backend.ts"], { cwd: REPO_ROOT, env: { INFRA_CONFIG: file }, reject: false });
  };

  test("local state is refused, saying why and what to set", async () => {
    const result = await run(baseSettings());
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^error: .*infra\.json: backend is "local": the infra stack's state would live on this runner and vanish with it/);
    expect(result.stderr).toContain('Set "backend": {"type": "gcs", "bucket": "<state bucket>"}');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test("a GCS backend passes and is named", async () => {
    const result = await run({ ...baseSettings(), backend: { type: "gcs", bucket: "test-project-tfstate" } });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe("backend: gs://test-project-tfstate/nixos-gce/infra");
  });
});
