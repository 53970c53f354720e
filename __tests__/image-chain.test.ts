/** The image chain: NixImage build step → upload of the bucket object → content-hashed compute image. */
import { testWithTools } from "./helpers/tools.js";
import { literal } from "../lib/steps.js";
import { closeSync, constants, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { ComputeImageIamMember } from "@cdktf/provider-google/lib/compute-image-iam-member/index.js";
import { StorageBucket } from "@cdktf/provider-google/lib/storage-bucket/index.js";
import { Testing } from "cdktf";
import { NixImage } from "../constructs/nix-image.js";
import { imageDigest, imageName } from "../lib/gce.js";
import { resolveWithNix } from "../lib/nix.js";
import { localExecs, runLocalExec } from "./helpers/local-exec.js";
import { describeWithNix, DOUBLES, fixtureFlake, type FixtureFlake, NIX, NIX_ENV, REPO_ROOT } from "./helpers/nix.js";
import { settings } from "./helpers/settings.js";
import { hclFor, resource, resources, staticResolved, synthStack } from "./helpers/stack.js";

const imagesOnly = (overrides = {}) => settings({ hosts: {}, ...overrides });

describe("image chain synthesis", () => {
  testWithTools(["terraform"], "HCL snapshot of the image resources", () => {
    const s = imagesOnly();
    const { stack } = synthStack(s, staticResolved(s));
    expect(hclFor(stack)).toMatchSnapshot();
  });

  test("the private bucket: uniform access, public access prevention, location, labels", () => {
    const s = imagesOnly();
    const { json } = synthStack(s, staticResolved(s));
    expect(json).toHaveResourceWithProperties(StorageBucket, {
      name: "test-project-images",
      location: "EUROPE-WEST1",
      uniform_bucket_level_access: true,
      public_access_prevention: "enforced",
    });
  });

  test("an existing bucket is referenced, not created", () => {
    const s = imagesOnly({ createImageBucket: false, imageBucket: "shared-images" });
    const { json } = synthStack(s, staticResolved(s));
    expect(resources(json, "google_storage_bucket")).toEqual({});
    const upload = resource(json, "null_resource", "base-image");
    expect(localExecs(upload)[0].environment.UPLOAD_BUCKET).toBe("shared-images");
    expect(upload.depends_on).toEqual([expect.stringMatching(/^null_resource\.base-build_Build_/)]);
  });

  test("a created bucket deletes uploaded objects after 30 days: images no longer need them", () => {
    const s = imagesOnly();
    const bucket = Object.values(resources(synthStack(s, staticResolved(s)).json, "google_storage_bucket"))[0];
    expect(bucket.lifecycle_rule).toEqual([{ action: { type: "Delete" }, condition: { age: 30, matches_prefix: ["nixos/"] } }]);
  });

  test("the object is uploaded by a step keyed by its name and the image name; no provider object reads local files", () => {
    const s = imagesOnly();
    const resolved = staticResolved(s);
    const { json } = synthStack(s, resolved);
    const hash = resolved.images.base.storePath.slice(11, 43);
    expect(resources(json, "google_storage_bucket_object")).toEqual({});
    const objectName = `nixos/${hash}/${resolved.images.base.filePath}`;
    const upload = resource(json, "null_resource", "base-image");
    const image = resource(json, "google_compute_image", "base-image");
    expect(upload.triggers).toEqual({ object: `gs://test-project-images/${objectName}`, image: image.name });
    expect(upload.depends_on).toEqual([expect.stringMatching(/^null_resource\.base-build_Build_/), expect.stringMatching(/^google_storage_bucket\.ImageBucket_/)]);
    const [exec] = localExecs(upload);
    expect(exec.command).toBe("constructs/gce-image.sh");
    expect(exec.environment).toEqual({
      NIX_FLAKE: ".",
      NIX_ATTRIBUTE: "nixosConfigurations.gce-base.config.system.build.googleComputeImage",
      PLANNED_STORE_PATH: resolved.images.base.storePath,
      IMAGE_FILE: resolved.images.base.filePath,
      GC_ROOT: `.infra/gcroots/${hash}`,
      UPLOAD_BUCKET: "test-project-images",
      UPLOAD_OBJECT: objectName,
    });
    const source = `https://storage.googleapis.com/test-project-images/${objectName}`;
    expect(image.raw_disk.source).toBe(source);
    expect(image.depends_on).toEqual([expect.stringMatching(/^null_resource\.base-image_Upload_/)]);
    expect(image.name).toBe(`nixos-base-${imageDigest(resolved.images.base.storePath, ["VIRTIO_SCSI_MULTIQUEUE"], source, "europe-west1")}`);
    // Where Google keeps the image: the region unless imageStorageLocation says otherwise (an org policy may allow only the region).
    expect(image.storage_locations).toEqual(["europe-west1"]);
    expect(image.family).toBe("nixos-base");
    expect(image.labels).toEqual({ "image-id": "base", "nix-store-hash": hash, "nixos-label": "25-11-20260107-d351d06" });
    expect(image.guest_os_features).toEqual([{ type: "VIRTIO_SCSI_MULTIQUEUE" }]);
    expect(image.lifecycle).toEqual({ create_before_destroy: true });
  });

  test("image names change with anything that makes Google create a new image, so a replacement never collides", () => {
    const name = (overrides: Record<string, unknown>) => {
      const s = imagesOnly(overrides);
      return resource(synthStack(s, staticResolved(s)).json, "google_compute_image", "base-image").name as string;
    };
    const base = name({});
    const features = name({ images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC"] } } });
    const bucket = name({ imageBucket: "other-images" });
    const location = name({ imageStorageLocation: "eu" });
    const storePath = name({ images: { base: { nixosConfiguration: "gce-other", family: "nixos-base" } } });
    expect(new Set([base, features, bucket, location, storePath]).size).toBe(5);
    expect(name({})).toBe(base);
    // Order of features does not matter to Google, so not to the name either.
    expect(imageDigest("/nix/store/x", ["A", "B"], "u", "eu")).toBe(imageDigest("/nix/store/x", ["B", "A"], "u", "eu"));
    expect(base).toMatch(/^nixos-base-[0-9a-df-np-sv-z]{32}$/);
    // Names of images that exist: a new digest function would rename (replace) every image, and every VM under recreateOnImageChange.
    const hash = "0a1b2c3d4e5f6g7h8i9j0k1l2m3n4p5q";
    expect(imageDigest(`/nix/store/${hash}-google-compute-image`, ["VIRTIO_SCSI_MULTIQUEUE"], `https://storage.googleapis.com/b/nixos/${hash}/nixos-image.raw.tar.gz`, "europe-west1")).toBe(
      "lwa22ffj14nxkpdjj60ax8m34ij40bhb",
    );
  });

  test("the build step is triggered by the planned store path, gets every value through environment, and its destroy step reads only its own triggers", () => {
    const s = imagesOnly();
    const resolved = staticResolved(s);
    const { json } = synthStack(s, resolved);
    const build = resource(json, "null_resource", "base-build");
    expect(build.triggers.planned_store_path).toBe(resolved.images.base.storePath);
    const execs = localExecs(build);
    expect(execs).toHaveLength(2);
    expect(execs[0].environment).toEqual({
      NIX_FLAKE: ".",
      NIX_ATTRIBUTE: "nixosConfigurations.gce-base.config.system.build.googleComputeImage",
      PLANNED_STORE_PATH: resolved.images.base.storePath,
      IMAGE_FILE: resolved.images.base.filePath,
      GC_ROOT: `.infra/gcroots/${resolved.images.base.storePath.slice(11, 43)}`,
    });
    expect(execs[0].command).toBe("constructs/nix-image.sh");
    expect(execs[0].interpreter).toEqual(["bash"]);
    expect(execs[0].working_dir).toBe("../../..");
    // `terraform destroy` drops the root (a destroy step may refer to nothing but self).
    expect(execs[1]).toEqual({
      command: "constructs/nix-image-destroy.sh",
      interpreter: ["bash"],
      working_dir: "../../..",
      environment: { GC_ROOT: "${self.triggers.gc_root}" },
      when: "destroy",
    });
  });

  test("one GcRoots step keeps exactly the planned images' roots and runs after the builds and images", () => {
    const s = imagesOnly({
      images: { base: { nixosConfiguration: "gce-base", family: "nixos-base" }, worker: { nixosConfiguration: "worker", family: "nixos-worker" } },
    });
    const resolved = staticResolved(s);
    const { json } = synthStack(s, resolved);
    const prune = resource(json, "null_resource", "GcRoots");
    const hashes = Object.values(resolved.images).map((i) => i.storePath.slice(11, 43)).sort();
    expect(prune.triggers).toEqual({ dir: ".infra/gcroots", keep: hashes.join(" ") });
    expect(localExecs(prune)[0].environment).toEqual({ GC_ROOT_DIR: ".infra/gcroots", GC_ROOTS_KEEP: hashes.join(" ") });
    expect(prune.depends_on).toHaveLength(4);
    // Terraform skips destroy steps of replaced and removed resources; only the builds have one, for `terraform destroy`.
    const withDestroyStep = Object.entries<any>(JSON.parse(json).resource.null_resource).filter(([, r]) => JSON.stringify(r).includes('"when":"destroy"'));
    expect(withDestroyStep.map(([name]) => name.replace(/_[0-9A-F]{8}$/, "")).sort()).toEqual(["base-build_Build", "worker-build_Build"]);
  });

  test("images are private unless public: true, which adds the binding and warns", () => {
    const s = imagesOnly();
    expect(resources(synthStack(s, staticResolved(s)).json, "google_compute_image_iam_member")).toEqual({});
    const pub = imagesOnly({ images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", public: true } } });
    const { stack, json } = synthStack(pub, staticResolved(pub));
    expect(json).toHaveResourceWithProperties(ComputeImageIamMember, {
      role: "roles/compute.imageUser",
      member: "allAuthenticatedUsers",
    });
    const warnings = stack.node.findAll().flatMap((c) => c.node.metadata.filter((m) => m.type === "@cdktf/warn").map((m) => m.data));
    expect(warnings).toEqual(['image family "nixos-base" is public: every authenticated Google account can use it (images.*.public = true)']);
  });

  test("image names keep the whole hash up to a 30-character family, then at least 20 characters", () => {
    const hash = "0123456789abcdfghijklmnpqrsvwxyz";
    expect(imageName("a".repeat(30), hash)).toBe(`${"a".repeat(30)}-${hash}`);
    expect(imageName("a".repeat(42), hash)).toBe(`${"a".repeat(42)}-${hash.slice(0, 20)}`);
    expect(imageName("a".repeat(42), hash)).toHaveLength(63);
  });

  describe("bad input gives clear errors", () => {
    test("a planned path that is not a store path", () => {
      const app = Testing.app();
      expect(
        () => new NixImage(app, "b", { flake: ".", configuration: "c", planned: { nixosConfiguration: "c", storePath: "/tmp/x", filePath: "f", nixosLabel: "l" }, gcRootDir: "g" }),
      ).toThrow('"/tmp/x" is not a Nix store path (/nix/store/<hash>-<name>)');
    });
  });
});

const NIX_PATH = NIX ?? "nix";

/** The gcloud test double for Cloud Storage, first on PATH, with its bucket directory. */
function gcsDouble(base: string) {
  const dir = join(base, `gcs-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir);
  copyFileSync(join(DOUBLES, "gcloud", "gcloud"), join(dir, "gcloud"));
  return {
    dir,
    env: { ...NIX_ENV, GCS_DOUBLE_DIR: dir, PATH: `${dir}:${process.env.PATH}` },
    object: (name: string) => join(dir, "test-project-images", name),
    calls: () => (existsSync(join(dir, "gcloud.log")) ? readFileSync(join(dir, "gcloud.log"), "utf8").trim().split("\n") : []),
  };
}
describeWithNix(`image chain with real Nix`, () => {
  let fixture: FixtureFlake;
  beforeEach(() => {
    fixture = fixtureFlake();
    process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;
  });
  afterEach(() => fixture.cleanup());

  const twoHosts = () =>
    settings({
      hosts: {
        vm: { nixosConfiguration: "vm", image: "base", machineType: "e2-small" },
        worker: { nixosConfiguration: "worker", image: "base", machineType: "e2-small" },
      },
    });
  const synth = async () => {
    const s = twoHosts();
    return synthStack(s, await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined })).json;
  };
  const imageResources = (json: string) => ({
    build: Object.fromEntries(Object.entries(resources(json, "null_resource")).filter(([id]) => id.includes("-build_"))),
    upload: Object.fromEntries(Object.entries(resources(json, "null_resource")).filter(([id]) => id.includes("-image_Upload_"))),
    image: resources(json, "google_compute_image"),
  });

  test("no change: byte-identical synth", async () => {
    expect(await synth()).toBe(await synth());
  });

  test("a change only to a host's services leaves the image resources unchanged", async () => {
    const before = await synth();
    const inputs = fixture.readInputs();
    inputs.configurations.vm.services = "postgresql, pipeline v2";
    fixture.writeInputs(inputs);
    const after = await synth();
    expect(after).not.toBe(before);
    expect(imageResources(after)).toEqual(imageResources(before));
  });

  test("a change to the image configuration gives a new object and a new image, created before the old one goes", async () => {
    const before = await synth();
    const inputs = fixture.readInputs();
    inputs.configurations["gce-base"].image = "base v2";
    fixture.writeInputs(inputs);
    const after = await synth();
    const [oldUpload, newUpload] = [before, after].map((j) => resource(j, "null_resource", "base-image"));
    const [oldImage, newImage] = [before, after].map((j) => resource(j, "google_compute_image", "base-image"));
    expect(newUpload.triggers.object).not.toBe(oldUpload.triggers.object);
    expect(newImage.name).not.toBe(oldImage.name);
    expect(newImage.family).toBe(oldImage.family);
    expect(newImage.lifecycle.create_before_destroy).toBe(true);
  });

  describe("the build step's local-exec, run by bash", () => {
    const synthAtRoot = async () => {
      const s = settings({ flake: fixture.ref, stateDir: join(fixture.dir, "state"), hosts: {} });
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
      return { json: synthStack(s, resolved).json, resolved };
    };

    test("builds the planned path and keeps a GC root; the upload step uploads that file once", async () => {
      const { json, resolved } = await synthAtRoot();
      const [create] = localExecs(resource(json, "null_resource", "base-build"));
      expect(existsSync(resolved.images.base.storePath)).toBe(false);
      const run = await runLocalExec(create, NIX_ENV);
      expect(run.all).toContain(`nix-image: ready ${resolved.images.base.storePath}/`);
      expect(run.exitCode).toBe(0);
      const gcRoot = create.environment.GC_ROOT;
      expect(gcRoot).toBe(join(fixture.dir, "state", "gcroots", resolved.images.base.storePath.slice(11, 43)));
      expect(readlinkSync(gcRoot)).toBe(resolved.images.base.storePath);

      const [upload] = localExecs(resource(json, "null_resource", "base-image"));
      const gcs = gcsDouble(fixture.dir);
      const first = await runLocalExec(upload, gcs.env);
      expect(first.exitCode).toBe(0);
      const object = gcs.object(upload.environment.UPLOAD_OBJECT);
      expect(readFileSync(object)).toEqual(readFileSync(join(resolved.images.base.storePath, resolved.images.base.filePath)));
      expect(first.all).not.toContain("building");
      // gzip, so GCE and anyone reading the bucket see what the object is.
      expect(gcs.calls().filter((c) => c.startsWith("storage cp"))).toEqual([
        `storage cp --content-type=application/gzip ${join(resolved.images.base.storePath, resolved.images.base.filePath)} gs://test-project-images/${upload.environment.UPLOAD_OBJECT}`,
      ]);
      const again = await runLocalExec(upload, gcs.env);
      expect(again.exitCode).toBe(0);
      expect(again.all).toContain("is already in the bucket; nothing uploaded");
      expect(gcs.calls().filter((c) => c.startsWith("storage cp"))).toHaveLength(1);
    });

    test("two upload steps of one object run at once (two images of one configuration): one uploads, the other waits and finds it", async () => {
      const { json } = await synthAtRoot();
      const [create] = localExecs(resource(json, "null_resource", "base-build"));
      expect((await runLocalExec(create, NIX_ENV)).exitCode).toBe(0);
      const [upload] = localExecs(resource(json, "null_resource", "base-image"));
      const gcs = gcsDouble(fixture.dir);
      const env = { ...gcs.env, GCS_DOUBLE_CP_SECONDS: "1" };
      const runs = await Promise.all([runLocalExec(upload, env), runLocalExec(upload, env)]);
      expect(runs.map((r) => r.exitCode)).toEqual([0, 0]);
      expect(gcs.calls().filter((c) => c.startsWith("storage cp"))).toHaveLength(1);
      expect(runs.map((r) => r.all).join("\n")).toContain("waiting for another step uploading");
      expect(runs.map((r) => r.all).join("\n")).toContain("is already in the bucket; nothing uploaded");
    });

    test("the upload step rebuilds a file missing from this machine's store (a fresh runner), with the planned-path check", async () => {
      const { json, resolved } = await synthAtRoot();
      const [upload] = localExecs(resource(json, "null_resource", "base-image"));
      expect(existsSync(resolved.images.base.storePath)).toBe(false);
      const gcs = gcsDouble(fixture.dir);
      const run = await runLocalExec(upload, gcs.env);
      expect(run.exitCode).toBe(0);
      expect(run.all).toContain("is not in this machine's Nix store; building it");
      expect(readlinkSync(upload.environment.GC_ROOT)).toBe(resolved.images.base.storePath);
      expect(existsSync(gcs.object(upload.environment.UPLOAD_OBJECT))).toBe(true);

      // A new configuration, planned but never built, then changed after synth:
      // the rebuild refuses and nothing is uploaded.
      fixture.writeInputs({ ...fixture.readInputs(), salt: "never built" });
      const other = await synthAtRoot();
      const inputs = fixture.readInputs();
      inputs.configurations["gce-base"].image = "changed after synth";
      fixture.writeInputs(inputs);
      const [stale] = localExecs(resource(other.json, "null_resource", "base-image"));
      const gcs2 = gcsDouble(fixture.dir);
      const refused = await runLocalExec(stale, gcs2.env);
      expect(refused.exitCode).toBe(1);
      expect(refused.all).toContain("nix-image: the flake changed after synth");
      expect(gcs2.calls().filter((c) => c.startsWith("storage cp"))).toEqual([]);
    });

    test("an answer other than 'not found' from the bucket stops the upload instead of guessing", async () => {
      const { json } = await synthAtRoot();
      const [upload] = localExecs(resource(json, "null_resource", "base-image"));
      const gcs = gcsDouble(fixture.dir);
      writeFileSync(
        join(gcs.dir, "gcloud"),
        '#!/bin/sh\nprintf "%s\\n" "$*" >> "$GCS_DOUBLE_DIR/gcloud.log"\necho "ERROR: (gcloud.storage.objects.describe) HTTPError 403: permission denied" >&2\nexit 1\n',
        { mode: 0o755 },
      );
      const run = await runLocalExec(upload, gcs.env);
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain("cannot tell whether gs://");
      expect(run.all).toContain("403: permission denied");
      // Stopped at the question: no build of the missing file, no upload attempt.
      expect(gcs.calls()).toEqual([expect.stringMatching(/^storage objects describe gs:\/\//)]);
      expect(run.all).not.toContain("building");
    });

    test("the GcRoots step drops only roots no planned image holds", async () => {
      const s = settings({ flake: fixture.ref, stateDir: join(fixture.dir, "state"), hosts: {} });
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
      const [prune] = localExecs(resource(synthStack(s, resolved).json, "null_resource", "GcRoots"));
      const dir = prune.environment.GC_ROOT_DIR;
      mkdirSync(dir, { recursive: true });
      const kept = resolved.images.base.storePath.slice(11, 43);
      const stale = "0123456789abcdfghijklmnpqrsvwxyz";
      symlinkSync("/nix/store/x", join(dir, kept));
      symlinkSync("/nix/store/y", join(dir, stale));
      writeFileSync(join(dir, "notes.txt"), "not a root");
      // Named like a root, but a plain file: not something Nix or this step made.
      const plain = "1123456789abcdfghijklmnpqrsvwxyz";
      writeFileSync(join(dir, plain), "not a root either");
      symlinkSync("/nix/store/z", join(dir, "other-link"));
      const run = await runLocalExec(prune);
      expect(run.exitCode).toBe(0);
      expect(run.all).toContain(`gc-roots: dropped ${join(dir, stale)}`);
      const present = (f: string) => lstatSync(join(dir, f), { throwIfNoEntry: false }) !== undefined;
      expect([kept, "notes.txt", "other-link", plain, stale].map(present)).toEqual([true, true, true, true, false]);
    });

    describe("upload locks (<stateDir>/locks, real flock)", () => {
      const until = async (what: string, ok: () => boolean) => {
        for (const started = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 50))) {
          if (Date.now() - started > 20_000) throw new Error(`timed out waiting for ${what}`);
        }
      };
      /** Another process holding a lock file (flock(1)); on release it unlinks it first, as the GcRoots step does, when told to. */
      const holder = (lock: string, signals: string) => {
        const held = execa("flock", [lock, "bash", "-c", 'touch "$1/held"; until [ -e "$1/go" ]; do sleep 0.05; done; [ ! -e "$1/unlink" ] || rm -f "$2"', "holder", signals, lock]);
        return { held, release: async (unlink = false) => {
          if (unlink) writeFileSync(join(signals, "unlink"), "");
          writeFileSync(join(signals, "go"), "");
          await held;
        } };
      };
      const lockOf = (env: Record<string, string>) => join(fixture.dir, "state", "locks", `upload-${env.GC_ROOT.split("/").pop()}`);

      test("the upload step refuses a symlink in place of its lock and writes nothing through it", async () => {
        const { json } = await synthAtRoot();
        const [upload] = localExecs(resource(json, "null_resource", "base-image"));
        const lock = lockOf(upload.environment);
        mkdirSync(dirname(lock), { recursive: true });
        const precious = join(fixture.dir, "precious");
        writeFileSync(precious, "not yours to truncate\n");
        for (const target of [precious, join(fixture.dir, "created-through-the-link")]) {
          rmSync(lock, { force: true });
          symlinkSync(target, lock);
          const gcs = gcsDouble(fixture.dir);
          const run = await runLocalExec(upload, gcs.env);
          expect([run.exitCode, run.all]).toEqual([1, `gce-image: ${lock} is not a regular file (a symlink?); remove it and run the step again`]);
          expect(gcs.calls()).toEqual([]);
        }
        // `exec 9>` through the link emptied the file it pointed to (and created a missing one).
        expect(readFileSync(precious, "utf8")).toBe("not yours to truncate\n");
        expect(existsSync(join(fixture.dir, "created-through-the-link"))).toBe(false);
      });

      test("a FIFO in place of its lock is refused at once, not opened (an open for writing waits for a reader)", async () => {
        const { json } = await synthAtRoot();
        const [upload] = localExecs(resource(json, "null_resource", "base-image"));
        const lock = lockOf(upload.environment);
        mkdirSync(dirname(lock), { recursive: true });
        rmSync(lock, { force: true });
        await execa("mkfifo", [lock]);
        const gcs = gcsDouble(fixture.dir);
        const step = runLocalExec(upload, gcs.env);
        // A step blocked opening the FIFO is freed by a reader, so the test ends either way (and leaves no process).
        let hung = false;
        const guard = setTimeout(() => {
          hung = true;
          closeSync(openSync(lock, constants.O_RDONLY | constants.O_NONBLOCK));
        }, 10_000);
        const run = await step;
        clearTimeout(guard);
        expect({ hung, exitCode: run.exitCode, output: run.all }).toEqual({
          hung: false,
          exitCode: 1,
          output: `gce-image: ${lock} is not a regular file (a symlink?); remove it and run the step again`,
        });
        expect(gcs.calls()).toEqual([]);
        rmSync(lock);
      });

      test("the GcRoots step drops the locks of images no longer planned, never one another process holds", async () => {
        const { json, resolved } = await synthAtRoot();
        const [prune] = localExecs(resource(json, "null_resource", "GcRoots"));
        const locks = join(fixture.dir, "state", "locks");
        mkdirSync(locks, { recursive: true });
        const kept = `upload-${resolved.images.base.storePath.slice(11, 43)}`;
        const [stale, held] = ["0123456789abcdfghijklmnpqrsvwxyz", "1123456789abcdfghijklmnpqrsvwxyz"].map((h) => `upload-${h}`);
        for (const f of [kept, stale, held, "notes.txt"]) writeFileSync(join(locks, f), "");
        symlinkSync(join(fixture.dir, "elsewhere"), join(locks, "upload-2123456789abcdfghijklmnpqrsvwxyz"));
        const signals = mkdtempSync(join(fixture.dir, "holder-"));
        const other = holder(join(locks, held), signals);
        await until("the holder", () => existsSync(join(signals, "held")));
        const run = await runLocalExec(prune);
        await other.release();
        expect(run.exitCode).toBe(0);
        expect(run.all.split("\n").filter((l) => l.includes("/locks/")).sort()).toEqual([
          `gc-roots: dropped ${join(locks, stale)} (no planned image uses it)`,
          `gc-roots: kept ${join(locks, held)} (a step holds it)`,
        ]);
        expect(readdirSync(locks).sort()).toEqual([held, kept, "notes.txt", "upload-2123456789abcdfghijklmnpqrsvwxyz"].sort());
      });

      test("an upload that waited for a lock dropped meanwhile takes the new file: a later upload still waits for it", async () => {
        const { json } = await synthAtRoot();
        const [upload] = localExecs(resource(json, "null_resource", "base-image"));
        const lock = lockOf(upload.environment);
        mkdirSync(dirname(lock), { recursive: true });
        writeFileSync(lock, "");
        // TEST DOUBLE of gcloud whose describe answers "found" only once released, so the step holds its lock meanwhile.
        const gcs = gcsDouble(fixture.dir);
        writeFileSync(
          join(gcs.dir, "gcloud"),
          '#!/bin/sh\ntouch "$GCS_DOUBLE_DIR/describing"\nuntil [ -e "$GCS_DOUBLE_DIR/release" ]; do sleep 0.05; done\necho object\n',
          { mode: 0o755 },
        );
        const signals = mkdtempSync(join(fixture.dir, "holder-"));
        const other = holder(lock, signals);
        await until("the holder", () => existsSync(join(signals, "held")));
        const step = runLocalExec(upload, gcs.env);
        let output = "";
        step.all!.on("data", (chunk: Buffer) => (output += chunk.toString()));
        await until("the step to wait", () => output.includes("waiting for another step uploading"));
        // The holder unlinks the file while holding it, then lets go: what the GcRoots step does.
        await other.release(true);
        await until("the step to go on", () => existsSync(join(gcs.dir, "describing")));
        // The step holds the file now at the lock's path: another flock on it must fail.
        const probe = await execa("flock", ["-n", lock, "true"], { reject: false });
        writeFileSync(join(gcs.dir, "release"), "");
        const run = await step;
        expect(probe.exitCode).toBe(1);
        expect(run.exitCode).toBe(0);
        expect(run.all).toContain("is already in the bucket; nothing uploaded");
      });
    });

    test("a hostile flake path arrives verbatim; the script quotes a GC root path the settings would refuse", async () => {
      const hostileDir = join(fixture.dir, `fx;'q"dq$(id)`);
      mkdirSync(hostileDir);
      for (const f of ["flake.nix", "inputs.json"]) copyFileSync(join(fixture.dir, f), join(hostileDir, f));
      const stateDir = join(fixture.dir, "state dir ;'$(touch pwned)`id`${HOME}%{x}");
      expect(() => settings({ stateDir })).toThrow(/stateDir: must be a directory path/);
      const s = settings({ flake: `path:${hostileDir}`, stateDir: join(fixture.dir, "state"), hosts: {} });
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
      const [built] = localExecs(resource(synthStack(s, resolved).json, "null_resource", "base-build"));
      const gcRoot = join(stateDir, "gcroots", resolved.images.base.storePath.slice(11, 43));
      const create = { ...built, environment: { ...built.environment, GC_ROOT: literal(gcRoot) } };
      const run = await runLocalExec(create, NIX_ENV);
      expect(run.exitCode).toBe(0);
      expect(run.all).toContain(`nix-image: evaluating path:${hostileDir}#nixosConfigurations.gce-base.config.system.build.googleComputeImage`);
      expect(readlinkSync(gcRoot)).toBe(resolved.images.base.storePath);
      expect(existsSync(join(fixture.dir, "pwned"))).toBe(false);
      expect(existsSync(join(REPO_ROOT, "pwned"))).toBe(false);
    });

    test("a planned image file the build does not contain fails the step", async () => {
      const { json } = await synthAtRoot();
      const [create] = localExecs(resource(json, "null_resource", "base-build"));
      const run = await runLocalExec({ ...create, environment: { ...create.environment, IMAGE_FILE: "nixos-image-other.raw.tar.gz" } }, NIX_ENV);
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain("has no nixos-image-other.raw.tar.gz; check config.image.filePath");
    });

    /**
     * A directory with a `nix` that runs real nix, then, right after `nix eval`
     * returns, edits the flake: the race the check after the build exists for.
     */
    const racingNix = (edit: string) => {
      const bin = join(fixture.dir, "racing-bin");
      mkdirSync(bin);
      writeFileSync(
        join(bin, "nix"),
        `#!/bin/sh\n${NIX_PATH} "$@"; status=$?\ncase " $* " in *" eval "*) sed -i 's/base v1/${edit}/' "${join(fixture.dir, "inputs.json")}" ;; esac\nexit $status\n`,
        { mode: 0o755 },
      );
      return bin;
    };

    test("a flake edited between the evaluation and the build is caught by the realized-path check", async () => {
      const { json, resolved } = await synthAtRoot();
      const [create] = localExecs(resource(json, "null_resource", "base-build"));
      const run = await runLocalExec(create, { ...NIX_ENV, PATH: `${racingNix("edited mid-apply")}:${process.env.PATH}` });
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain(`nix-image: the flake changed after synth; run synth/diff again (planned ${resolved.images.base.storePath}, built /nix/store/`);
      expect(existsSync(create.environment.GC_ROOT)).toBe(false);
    });

    test("the realized-path check holds when the planned image is already in the store (built by an earlier apply)", async () => {
      const { json, resolved } = await synthAtRoot();
      const [create] = localExecs(resource(json, "null_resource", "base-build"));
      expect((await runLocalExec(create, NIX_ENV)).exitCode).toBe(0);
      expect(existsSync(join(resolved.images.base.storePath, resolved.images.base.filePath))).toBe(true);
      // The planned file is there, but this run built something else: still a refusal, and no root kept for it.
      const run = await runLocalExec(create, { ...NIX_ENV, PATH: `${racingNix("edited mid-apply, again")}:${process.env.PATH}` });
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain(`nix-image: the flake changed after synth; run synth/diff again (planned ${resolved.images.base.storePath}, built /nix/store/`);
      expect(run.all).not.toContain("nix-image: ready");
      expect(existsSync(create.environment.GC_ROOT)).toBe(false);
    });

    test("fails with a clear message when the flake changed after synth", async () => {
      const { json } = await synthAtRoot();
      const inputs = fixture.readInputs();
      inputs.configurations["gce-base"].image = "changed after synth";
      fixture.writeInputs(inputs);
      const [create] = localExecs(resource(json, "null_resource", "base-build"));
      const run = await runLocalExec(create, NIX_ENV);
      expect(run.exitCode).toBe(1);
      expect(run.all).toContain("nix-image: the flake changed after synth; run synth/diff again (planned ");
      // Refused after evaluating, before building: nothing unreviewed is built.
      expect(run.all).toContain(", flake now gives /nix/store/");
      expect(run.all).not.toContain("nix-image: building");
      expect(existsSync(create.environment.GC_ROOT)).toBe(false);
    });
  });
});
