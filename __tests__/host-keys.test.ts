/** npm run host-keys: the deploys' known_hosts kept in the state bucket (the gcloud double's, a directory here). */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { DOUBLES, REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";

const TSX = join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs");
const URI = "gs://test-project-tfstate/nixos-gce/known_hosts/infra";
const KEYS = "vm-1234 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGW+r0S3uhGzT7JfMpHhr9SEToqgWTg8SQLYeg96X2fB\nvm-5678 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm\n";

describe("npm run host-keys", () => {
  let dir: string;
  let gcs: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "host-keys-"));
    gcs = join(dir, "gcs");
    mkdirSync(gcs);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A project directory with its settings: a gcs backend and a stateDir other than the default. */
  const project = (name: string, settings: unknown = { ...baseSettings(), stateDir: "state/ci", backend: { type: "gcs", bucket: "test-project-tfstate" } }) => {
    const root = join(dir, name);
    mkdirSync(root);
    writeFileSync(join(root, "infra.json"), JSON.stringify(settings));
    return { root, keys: join(root, "state", "ci", "known_hosts", "infra") };
  };
  const run = (root: string, action: string, gcloudDir = join(DOUBLES, "gcloud")) =>
    execa("node", ["--import", TSX, join(REPO_ROOT, "bin", "host-keys.ts"), action], {
      cwd: root,
      env: { INFRA_CONFIG: join(root, "infra.json"), GCS_DOUBLE_DIR: gcs, PATH: `${gcloudDir}:${process.env.PATH}` },
      reject: false,
    });

  test("nothing recorded yet: pull says so and push has nothing to save; both exit 0 and write nothing", async () => {
    const { root } = project("first");
    const pulled = await run(root, "pull");
    expect({ code: pulled.exitCode, stdout: pulled.stdout }).toEqual({ code: 0, stdout: `none recorded yet at ${URI}: this deploy records each host's key on first contact` });
    expect(existsSync(join(root, "state"))).toBe(false);
    const pushed = await run(root, "push");
    expect({ code: pushed.exitCode, stdout: pushed.stdout }).toEqual({ code: 0, stdout: "nothing to save: state/ci/known_hosts/infra does not exist (no host was contacted)" });
    expect(existsSync(join(gcs, "test-project-tfstate"))).toBe(false);
  });

  test("push, then pull in a fresh project: the same bytes at <stateDir>/known_hosts/infra", async () => {
    const first = project("first");
    mkdirSync(join(first.root, "state", "ci", "known_hosts"), { recursive: true });
    writeFileSync(first.keys, KEYS);
    const pushed = await run(first.root, "push");
    expect({ code: pushed.exitCode, stdout: pushed.stdout }).toEqual({ code: 0, stdout: `saved state/ci/known_hosts/infra to ${URI}` });
    const next = project("next");
    const pulled = await run(next.root, "pull");
    expect({ code: pulled.exitCode, stdout: pulled.stdout }).toEqual({ code: 0, stdout: `pulled ${URI} to state/ci/known_hosts/infra` });
    expect(readFileSync(next.keys, "utf8")).toBe(KEYS);
  });

  test("a local file that differs from the bucket's is refused, naming both, and left as it was", async () => {
    const { root, keys } = project("first");
    mkdirSync(join(gcs, "test-project-tfstate", "nixos-gce", "known_hosts"), { recursive: true });
    writeFileSync(join(gcs, "test-project-tfstate", "nixos-gce", "known_hosts", "infra"), KEYS);
    mkdirSync(join(root, "state", "ci", "known_hosts"), { recursive: true });
    writeFileSync(keys, "vm-1234 ssh-ed25519 AAAAother\n");
    const pulled = await run(root, "pull");
    expect(pulled.exitCode).toBe(1);
    expect(pulled.stderr).toMatch(new RegExp(`^error: state/ci/known_hosts/infra differs from ${URI}; compare them .*move state/ci/known_hosts/infra aside and pull again, or push it[^\\n]*$`));
    expect(readFileSync(keys, "utf8")).toBe("vm-1234 ssh-ed25519 AAAAother\n");
  });

  test("a gcloud failure other than 'not found' fails the pull with gcloud's words, instead of trusting on first use", async () => {
    const { root } = project("first");
    const denied = join(dir, "gcloud-403");
    mkdirSync(denied);
    writeFileSync(
      join(denied, "gcloud"),
      '#!/bin/sh\n# TEST DOUBLE: gcloud for an account without read access to the state bucket.\necho "ERROR: (gcloud.storage.objects.describe) HTTPError 403: deploy@test-project.iam.gserviceaccount.com does not have storage.objects.get access" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const pulled = await run(root, "pull", denied);
    expect(pulled.exitCode).toBe(1);
    expect(pulled.stderr).toBe(`error: cannot tell whether ${URI} holds host keys: ERROR: (gcloud.storage.objects.describe) HTTPError 403: deploy@test-project.iam.gserviceaccount.com does not have storage.objects.get access`);
    expect(existsSync(join(root, "state"))).toBe(false);
  });

  test("a local backend is refused in one line: there is no state bucket", async () => {
    const { root } = project("first", baseSettings());
    const pulled = await run(root, "pull");
    expect(pulled.exitCode).toBe(1);
    expect(pulled.stderr).toMatch(/^error: \S+infra\.json: backend is "local", so there is no state bucket to keep the host keys in; [^\n]*$/);
  });
});
