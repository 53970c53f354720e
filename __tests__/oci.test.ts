/** OCI images: Artifact Registry resources, and the push step run for real against a local registry. */
import { ArtifactRegistryRepository } from "@cdktf/provider-google/lib/artifact-registry-repository/index.js";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { resolveWithNix } from "../lib/nix.js";
import { localExecs, type LocalExec, runLocalExec } from "./helpers/local-exec.js";
import { DOUBLES, FIXTURES, fixtureFlake, type FixtureFlake, NIX_ENV, REPO_ROOT } from "./helpers/nix.js";
import { type Registry, startRegistry } from "./helpers/registry.js";
import { describeWithTools, testWithTools } from "./helpers/tools.js";
import { settings } from "./helpers/settings.js";
import { hclFor, resource, resources, staticResolved, synthStack } from "./helpers/stack.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example";
const ociSettings = (flake = ".") =>
  settings({
    flake,
    ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" }, transform: { package: "oci-transform", version: "0.2.0" } },
    hosts: {
      vm: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: [KEY], runsOciImages: ["ingest"] },
      db: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: [KEY] },
    },
  });

describe("registry synthesis", () => {
  testWithTools(["terraform"], "HCL snapshot of the registry resources", () => {
    const s = settings({ hosts: {}, images: {}, ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" } } });
    expect(hclFor(synthStack(s, staticResolved(s)).stack)).toMatchSnapshot();
  });

  test("a Docker repository with immutable tags and a keep-last-N cleanup policy", () => {
    const s = ociSettings();
    const { json } = synthStack(s, staticResolved(s));
    expect(json).toHaveResourceWithProperties(ArtifactRegistryRepository, {
      format: "DOCKER",
      repository_id: "pipeline",
      location: "europe-west1",
      docker_config: { immutable_tags: true },
      cleanup_policy_dry_run: false,
    });
    const policies = resource(json, "google_artifact_registry_repository", "Registry").cleanup_policies;
    expect(policies).toEqual([
      { id: "delete-all-but-kept", action: "DELETE", condition: { tag_state: "ANY" } },
      { id: "keep-newest-10", action: "KEEP", most_recent_versions: { keep_count: 10 } },
    ]);
  });

  test("hosts that run the images, and only they, may read the repository", () => {
    const s = ociSettings();
    const grants = Object.values(resources(synthStack(s, staticResolved(s)).json, "google_artifact_registry_repository_iam_member"));
    expect(grants).toHaveLength(1);
    expect(grants[0].role).toBe("roles/artifactregistry.reader");
    expect(grants[0].member).toMatch(/^\$\{google_service_account\.vm-vm_ServiceAccount_\w+\.member\}$/);
  });

  test("the push step: keyed by the store path, tag <version>-<hash>, outputs by tag and digest, no credentials", () => {
    const s = ociSettings();
    const resolved = staticResolved(s);
    const { json } = synthStack(s, resolved);
    const hash = resolved.ociImages.ingest.storePath.slice(11, 43);
    const push = resource(json, "null_resource", "ingest-oci");
    expect(push.triggers).toEqual({
      store_path: resolved.ociImages.ingest.storePath,
      reference: `europe-west1-docker.pkg.dev/test-project/pipeline/ingest:0.1.0-${hash}`,
    });
    const [exec] = localExecs(push);
    expect(exec.environment).toEqual({
      OCI_FLAKE: ".",
      OCI_PACKAGE: "oci-ingest",
      OCI_PLANNED_STORE_PATH: resolved.ociImages.ingest.storePath,
      OCI_REPOSITORY: "europe-west1-docker.pkg.dev/test-project/pipeline/ingest",
      OCI_TAG: `0.1.0-${hash}`,
      OCI_AUTH: "gcloud",
      OCI_TLS_VERIFY: "true",
    });
    const outputs = JSON.parse(json).output;
    expect(outputs["oci-ingest-reference"].value).toBe(`europe-west1-docker.pkg.dev/test-project/pipeline/ingest:0.1.0-${hash}`);
    expect(outputs["oci-ingest-digest-reference"].value).toMatch(/^\$\{data\.google_artifact_registry_docker_image\.ingest-oci_Pushed_\w+\.self_link\}$/);
    expect(json).not.toMatch(/access[_-]?token|password|private/i);
  });
});

describeWithTools(["nix"], "the project's OCI images, built by real Nix (a double of dockerTools writes the image config)", () => {
  test("every image runs as nobody (65534:65534) unless ociImages.<id>.user names another", async () => {
    const dir = mkdtempSync(join(tmpdir(), "oci-config-"));
    try {
      const settingsFile = join(dir, "infra.json");
      const ociImages = { ingest: { package: "oci-ingest", version: "0.1.0" }, transform: { package: "oci-transform", version: "0.2.0", user: "0" } };
      writeFileSync(settingsFile, JSON.stringify({ ociImages }));
      const built = await execa("nix", ["build", "--impure", "--json", "--no-link", "--file", join(FIXTURES, "oci-image-config.nix"), "oci-ingest", "oci-transform"], {
        env: { ...NIX_ENV, INFRA_REPO_ROOT: REPO_ROOT, INFRA_SETTINGS: settingsFile },
      });
      const [ingest, transform] = JSON.parse(built.stdout).map((b: { outputs: { out: string } }) => JSON.parse(readFileSync(b.outputs.out, "utf8")).config);
      expect(ingest.User).toBe("65534:65534");
      expect(transform.User).toBe("0");
      expect(ingest.Entrypoint).toEqual([expect.stringMatching(/^\/nix\/store\/\w{32}-pipeline-ingest\/bin\/pipeline-ingest$/)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithTools(["nix", "docker-registry", "skopeo", "umoci"], "push to a real registry with real skopeo", () => {
  let fixture: FixtureFlake;
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => registry?.stop());
  beforeEach(() => {
    fixture = fixtureFlake();
    process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
  });
  afterEach(() => fixture.cleanup());

  const pushExec = async (id: "ingest" | "transform", flake = fixture.ref) => {
    const s = ociSettings(flake);
    const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
    const [exec] = localExecs(resource(synthStack(s, resolved).json, "null_resource", `${id}-oci`));
    // The registry on 127.0.0.1 stands in for Artifact Registry's host; plain HTTP, no Google token.
    const local: LocalExec = {
      ...exec,
      environment: {
        ...exec.environment,
        OCI_REPOSITORY: exec.environment.OCI_REPOSITORY.replace("europe-west1-docker.pkg.dev", registry.address),
        OCI_AUTH: "none",
        OCI_TLS_VERIFY: "false",
      },
    };
    return { exec: local, reference: `${local.environment.OCI_REPOSITORY}:${local.environment.OCI_TAG}` };
  };
  const inspect = async (reference: string) =>
    JSON.parse((await execa("skopeo", ["inspect", "--tls-verify=false", `docker://${reference}`])).stdout);

  test("pushes the Nix-built archive; labels read back; the same inputs give the same digest and no new upload", async () => {
    const { exec, reference } = await pushExec("ingest");
    const first = await runLocalExec(exec, NIX_ENV);
    expect(first.all).toContain(`oci-push[oci-ingest]: pushed ${reference}`);
    expect(first.exitCode).toBe(0);
    const image = await inspect(reference);
    expect(image.Labels).toEqual({
      "org.opencontainers.image.title": "oci-ingest",
      "org.opencontainers.image.version": "0.1.0",
      "org.opencontainers.image.revision": "dirty",
      "org.opencontainers.image.created": "1970-01-01T00:00:01Z",
    });
    expect(first.all).toContain(`digest ${exec.environment.OCI_REPOSITORY}@${image.Digest}`);
    const manifest = JSON.parse((await execa("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reference}`])).stdout);
    expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(manifest.annotations).toEqual(image.Labels);

    const blobs = registry.blobCount();
    const second = await runLocalExec(exec, NIX_ENV);
    expect(second.exitCode).toBe(0);
    expect(second.all).toContain(`${reference} is already in the registry; nothing built or pushed`);
    expect(second.all).not.toContain("building");
    expect(registry.blobCount()).toBe(blobs);
    expect((await inspect(reference)).Digest).toBe(image.Digest);

    // The same store path pushed afresh elsewhere converts to the same manifest digest.
    const elsewhere = { ...exec, environment: { ...exec.environment, OCI_REPOSITORY: `${exec.environment.OCI_REPOSITORY}-again` } };
    expect((await runLocalExec(elsewhere, NIX_ENV)).exitCode).toBe(0);
    expect((await inspect(`${elsewhere.environment.OCI_REPOSITORY}:${exec.environment.OCI_TAG}`)).Digest).toBe(image.Digest);
  });

  test("a changed input gives a new tag and a new digest", async () => {
    const before = await pushExec("ingest");
    expect((await runLocalExec(before.exec, NIX_ENV)).exitCode).toBe(0);
    const inputs = fixture.readInputs();
    inputs.ociImages["oci-ingest"].payload = "ingest v2";
    fixture.writeInputs(inputs);
    const after = await pushExec("ingest");
    expect(after.exec.environment.OCI_TAG).not.toBe(before.exec.environment.OCI_TAG);
    expect(after.exec.environment.OCI_TAG).toMatch(/^0\.1\.0-[0-9a-z]{32}$/);
    const run = await runLocalExec(after.exec, NIX_ENV);
    expect(run.exitCode).toBe(0);
    expect((await inspect(after.reference)).Digest).not.toBe((await inspect(before.reference)).Digest);
  });

  test("the commit is labelled at push time, so the store path and tag do not change with it", async () => {
    const gitEnv = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };
    const git = (...args: string[]) => execa("git", ["-C", fixture.dir, ...args], { env: gitEnv });
    await git("init", "-q");
    await git("add", "-A");
    await git("commit", "-qm", "fixture");
    const revision = (await git("rev-parse", "HEAD")).stdout;
    // An absolute path: the nix CLI makes it git+file, as it does with "." in the project.
    const { exec, reference } = await pushExec("ingest", fixture.dir);
    const run = await runLocalExec(exec, NIX_ENV);
    expect(run.exitCode).toBe(0);
    expect(run.all).toContain(`revision ${revision}`);
    const image = await inspect(reference);
    expect(image.Labels["org.opencontainers.image.revision"]).toBe(revision);
    const manifest = JSON.parse((await execa("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reference}`])).stdout);
    expect(manifest.annotations["org.opencontainers.image.revision"]).toBe(revision);

    await git("commit", "-q", "--allow-empty", "-m", "another commit");
    const again = await pushExec("ingest", fixture.dir);
    expect(again.exec.environment.OCI_TAG).toBe(exec.environment.OCI_TAG);
    expect(again.exec.environment.OCI_PLANNED_STORE_PATH).toBe(exec.environment.OCI_PLANNED_STORE_PATH);
  });

  test("with gcloud auth, the token reaches skopeo in a well-formed auth file, never on a command line", async () => {
    const { exec, reference } = await pushExec("ingest");
    // The gcloud test double prints a token; a wrapper around the real skopeo
    // records each call's argv and the auth file it is given.
    const bin = join(fixture.dir, "bin");
    mkdirSync(bin);
    copyFileSync(join(DOUBLES, "gcloud", "gcloud"), join(bin, "gcloud"));
    const skopeo = (await execa("sh", ["-c", "command -v skopeo"])).stdout;
    writeFileSync(
      join(bin, "skopeo"),
      `#!/bin/sh\nprintf '%s\\n' "$*" >> "${bin}/skopeo.log"\nprev=""\nfor a in "$@"; do [ "$prev" = --authfile ] && cp "$a" "${bin}/auth.json" && stat -c '%a %U' "$a" "$(dirname "$a")" >> "${bin}/auth.modes" && echo "$a" >> "${bin}/auth.paths"; prev="$a"; done\nexec ${skopeo} "$@"\n`,
      { mode: 0o755 },
    );
    const env = { ...NIX_ENV, GCS_DOUBLE_DIR: bin, PATH: `${bin}:${process.env.PATH}` };
    const run = await runLocalExec({ ...exec, environment: { ...exec.environment, OCI_AUTH: "gcloud" } }, env);
    expect(run.exitCode).toBe(0);
    expect(run.all).toContain(`pushed ${reference}`);
    const auth = JSON.parse(readFileSync(join(bin, "auth.json"), "utf8"));
    expect(auth).toEqual({ auths: { [registry.address]: { auth: Buffer.from("oauth2accesstoken:ya29.test-double-token").toString("base64") } } });
    expect(readFileSync(join(bin, "skopeo.log"), "utf8")).not.toContain("ya29.test-double-token");
    // Readable by this user alone (the file 0600, its directory 0700), and gone after the step.
    const user = (await execa("id", ["-un"])).stdout;
    expect([...new Set(readFileSync(join(bin, "auth.modes"), "utf8").trim().split("\n"))].sort()).toEqual([`600 ${user}`, `700 ${user}`]);
    for (const path of new Set(readFileSync(join(bin, "auth.paths"), "utf8").trim().split("\n"))) expect(existsSync(path)).toBe(false);
  });

  test("a gzipped archive is pushed too", async () => {
    const { exec, reference } = await pushExec("transform");
    const run = await runLocalExec(exec, NIX_ENV);
    expect(run.all).toContain("decompressing the gzipped archive");
    expect(run.exitCode).toBe(0);
    expect((await inspect(reference)).Labels["org.opencontainers.image.version"]).toBe("0.1.0");
  });

  test("fails with a clear message when the flake changed after synth", async () => {
    const { exec } = await pushExec("ingest");
    const inputs = fixture.readInputs();
    inputs.ociImages["oci-ingest"].payload = "changed after synth";
    fixture.writeInputs(inputs);
    const run = await runLocalExec(exec, NIX_ENV);
    expect(run.exitCode).toBe(1);
    expect(run.all).toContain("the flake changed after synth; run synth/diff again");
  });
});
