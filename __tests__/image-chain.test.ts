/** The image chain: NixImage build step → bucket object → content-hashed compute image. */
import { copyFileSync, existsSync, mkdirSync, readlinkSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { ComputeImageIamMember } from "@cdktf/provider-google/lib/compute-image-iam-member/index.js";
import { StorageBucket } from "@cdktf/provider-google/lib/storage-bucket/index.js";
import { App, Testing } from "cdktf";
import { GceImage } from "../constructs/gce-image.js";
import { ImageBucket } from "../constructs/image-bucket.js";
import { InfraStack } from "../constructs/infra-stack.js";
import { NixImage } from "../constructs/nix-image.js";
import { imageName } from "../lib/gce.js";
import { resolveWithNix } from "../lib/nix.js";
import { localExecs, runLocalExec } from "./helpers/local-exec.js";
import { describeWithNix, fixtureFlake, type FixtureFlake, NIX_ENV, nixSkipReason, REPO_ROOT } from "./helpers/nix.js";
import { settings } from "./helpers/settings.js";
import { hclFor, resource, resources, staticResolved, synthStack } from "./helpers/stack.js";

const imagesOnly = (overrides = {}) => settings({ hosts: {}, ...overrides });

describe("image chain synthesis", () => {
  test("HCL snapshot of the image resources", () => {
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
    expect(resource(json, "google_storage_bucket_object", "base-image").bucket).toBe("shared-images");
  });

  test("object and image are named by the full store hash and created before the old ones are destroyed", () => {
    const s = imagesOnly();
    const resolved = staticResolved(s);
    const { json } = synthStack(s, resolved);
    const hash = resolved.images.base.storePath.slice(11, 43);
    const object = resource(json, "google_storage_bucket_object", "base-image");
    expect(object.name).toBe(`nixos/${hash}/${resolved.images.base.filePath}`);
    expect(object.source).toBe(`${resolved.images.base.storePath}/${resolved.images.base.filePath}`);
    expect(object.depends_on).toEqual([expect.stringMatching(/^null_resource\.base-build_Build_/)]);
    expect(object.lifecycle).toEqual({ create_before_destroy: true });
    const image = resource(json, "google_compute_image", "base-image");
    expect(image.name).toBe(`nixos-base-${hash}`);
    expect(image.family).toBe("nixos-base");
    expect(image.raw_disk.source).toMatch(/^https:\/\/storage\.googleapis\.com\/\$\{google_storage_bucket_object\.base-image_Object_\w+\.bucket\}\/\$\{google_storage_bucket_object\.base-image_Object_\w+\.name\}$/);
    expect(image.labels).toEqual({ "image-id": "base", "nix-store-hash": hash, "nixos-label": "25-11-20260107-d351d06" });
    expect(image.guest_os_features).toEqual([{ type: "VIRTIO_SCSI_MULTIQUEUE" }]);
    expect(image.lifecycle).toEqual({ create_before_destroy: true });
  });

  test("the build step is triggered by the planned store path and gets every value through environment", () => {
    const s = imagesOnly();
    const resolved = staticResolved(s);
    const { json } = synthStack(s, resolved);
    const build = resource(json, "null_resource", "base-build");
    expect(build.triggers.planned_store_path).toBe(resolved.images.base.storePath);
    const [create, destroy] = localExecs(build);
    expect(create.environment).toEqual({
      NIX_FLAKE: ".",
      NIX_ATTRIBUTE: "nixosConfigurations.gce-base.config.system.build.googleComputeImage",
      PLANNED_STORE_PATH: resolved.images.base.storePath,
      IMAGE_FILE: resolved.images.base.filePath,
      GC_ROOT: `.infra/gcroots/${resolved.images.base.storePath.slice(11, 43)}`,
    });
    expect(create.command).toBe("lib/sh/build-image.sh");
    expect(create.interpreter).toEqual(["bash"]);
    expect(create.working_dir).toBe("../../..");
    expect(destroy.when).toBe("destroy");
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
    const build = (scope: App) => {
      const stack = new InfraStack(scope, "s", { settings: imagesOnly(), resolved: staticResolved(imagesOnly()) });
      return new NixImage(stack, "b", { flake: ".", configuration: "c", planned: staticResolved(imagesOnly()).images.base, gcRootDir: ".infra/gcroots" });
    };
    test("a family with capitals", () => {
      const app = Testing.app();
      expect(() => new GceImage(app, "i", { build: build(app), bucket: "b", family: "Nixos_Base" })).toThrow(
        `GceImage: family "Nixos_Base" is not a valid GCE name (1-63 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-')`,
      );
    });
    test("a family too long", () => {
      const app = Testing.app();
      expect(() => new GceImage(app, "i", { build: build(app), bucket: "b", family: "f".repeat(43) })).toThrow(
        'GceImage: family "' + "f".repeat(43) + '" is 43 characters; image names are <family>-<hash> and keep at least 20 hash characters, so a family may have at most 42 characters',
      );
    });
    test("an invalid bucket name", () => {
      expect(() => new ImageBucket(Testing.app(), "b", { name: "Images!", location: "EU" })).toThrow(
        `ImageBucket: name "Images!" is not a valid bucket name (3-63 characters: lowercase letters, digits, '-' and '_', starting and ending with a letter or digit)`,
      );
    });
    test("a planned path that is not a store path", () => {
      const app = Testing.app();
      expect(
        () => new NixImage(app, "b", { flake: ".", configuration: "c", planned: { nixosConfiguration: "c", storePath: "/tmp/x", filePath: "f", nixosLabel: "l" }, gcRootDir: "g" }),
      ).toThrow('"/tmp/x" is not a Nix store path (/nix/store/<hash>-<name>)');
    });
  });
});

describeWithNix(`image chain with real Nix${nixSkipReason}`, () => {
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
    object: resources(json, "google_storage_bucket_object"),
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

  test("a change to the image configuration gives a new object and a new image, created before the old ones go", async () => {
    const before = await synth();
    const inputs = fixture.readInputs();
    inputs.configurations["gce-base"].image = "base v2";
    fixture.writeInputs(inputs);
    const after = await synth();
    const [oldObject, newObject] = [before, after].map((j) => resource(j, "google_storage_bucket_object", "base-image"));
    const [oldImage, newImage] = [before, after].map((j) => resource(j, "google_compute_image", "base-image"));
    expect(newObject.name).not.toBe(oldObject.name);
    expect(newImage.name).not.toBe(oldImage.name);
    expect(newImage.family).toBe(oldImage.family);
    expect(newObject.lifecycle.create_before_destroy).toBe(true);
    expect(newImage.lifecycle.create_before_destroy).toBe(true);
  });

  describe("the build step's local-exec, run by bash", () => {
    const synthAtRoot = async () => {
      const s = settings({ flake: fixture.ref, stateDir: join(fixture.dir, "state"), hosts: {} });
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
      return { json: synthStack(s, resolved).json, resolved };
    };

    test("builds the planned path, keeps a GC root, and the file is where the object's source points", async () => {
      const { json, resolved } = await synthAtRoot();
      const build = resource(json, "null_resource", "base-build");
      const [create, destroy] = localExecs(build);
      expect(existsSync(resolved.images.base.storePath)).toBe(false);
      const run = await runLocalExec(create, NIX_ENV);
      expect(run.all).toContain(`nix-image: ready ${resolved.images.base.storePath}/`);
      expect(run.exitCode).toBe(0);
      const gcRoot = create.environment.GC_ROOT;
      expect(gcRoot).toBe(join(fixture.dir, "state", "gcroots", resolved.images.base.storePath.slice(11, 43)));
      expect(readlinkSync(gcRoot)).toBe(resolved.images.base.storePath);
      const source = resource(json, "google_storage_bucket_object", "base-image").source;
      expect(realpathSync(join(gcRoot, resolved.images.base.filePath))).toBe(source);
      expect(existsSync(source)).toBe(true);

      expect(destroy.environment).toEqual({ GC_ROOT: "${self.triggers.gc_root}" });
      const dropped = await runLocalExec({ ...destroy, environment: { GC_ROOT: build.triggers.gc_root } });
      expect(dropped.exitCode).toBe(0);
      expect(existsSync(gcRoot)).toBe(false);
    });

    test("hostile values in the flake path and the state dir arrive verbatim", async () => {
      const hostileDir = join(fixture.dir, `fx;'q"dq$(id)`);
      mkdirSync(hostileDir);
      for (const f of ["flake.nix", "inputs.json"]) copyFileSync(join(fixture.dir, f), join(hostileDir, f));
      const stateDir = join(fixture.dir, "state dir ;'$(touch pwned)`id`${HOME}%{x}");
      const s = settings({ flake: `path:${hostileDir}`, stateDir, hosts: {} });
      const resolved = await resolveWithNix(s, { projectRoot: fixture.dir, log: () => undefined });
      const [create] = localExecs(resource(synthStack(s, resolved).json, "null_resource", "base-build"));
      const run = await runLocalExec(create, NIX_ENV);
      expect(run.exitCode).toBe(0);
      expect(run.all).toContain(`nix-image: evaluating path:${hostileDir}#nixosConfigurations.gce-base.config.system.build.googleComputeImage`);
      expect(readlinkSync(join(stateDir, "gcroots", resolved.images.base.storePath.slice(11, 43)))).toBe(resolved.images.base.storePath);
      expect(existsSync(join(fixture.dir, "pwned"))).toBe(false);
      expect(existsSync(join(REPO_ROOT, "pwned"))).toBe(false);
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
      expect(existsSync(create.environment.GC_ROOT)).toBe(false);
    });
  });
});
