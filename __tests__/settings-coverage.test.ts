/**
 * Every settings key reaches the synthesized output, at the place that uses
 * it. A construct that drops a setting (a timeout, a disk type, the provider's
 * labels) fails here with the key's name, not only in a snapshot that
 * `jest -u` would rewrite.
 */
import { Testing } from "cdktf";
import { BootstrapStack } from "../constructs/bootstrap-stack.js";
import { InfraStack } from "../constructs/infra-stack.js";
import { parseSettings, settingsJsonSchema } from "../lib/settings.js";
import { baseSettings, REAL_KEY } from "./helpers/settings.js";
import { staticResolved } from "./helpers/stack.js";

/** Keys that never reach Terraform, and why. */
const NOT_IN_OUTPUT: Record<string, string> = {
  $schema: "read by editors only",
  system: "chooses packages.<system> at nix eval (resolver.test.ts: attribute paths)",
  ociSource: "read by the flake: it labels the OCI images, so it changes their store paths",
  lockFile: "read by synth and npm run pin (synth.test.ts)",
  "ociImages.*.user": "read by the flake (oci/default.nix): it sets the image's user, so it changes the store path (oci.test.ts)",
  "nixGc.keepGenerations": "read by the flake (nixos/maintenance.nix): it changes the hosts' systems (flake.test.ts)",
  "nixGc.schedule": "read by the flake (nixos/maintenance.nix): it changes the hosts' systems (flake.test.ts)",
  "hosts.*.nixGc.keepGenerations": "read by the flake (nixos/maintenance.nix): it changes the host's system (flake.test.ts)",
  "hosts.*.nixGc.schedule": "read by the flake (nixos/maintenance.nix): it changes the host's system (flake.test.ts)",
  "hosts.*.secrets.*.owner": "read by the flake (nixos/secrets.nix): the file's owner on the host (flake.test.ts)",
  "hosts.*.secrets.*.mode": "read by the flake (nixos/secrets.nix): the file's mode on the host (flake.test.ts)",
};

type Raw = Record<string, any>;
/** The test settings, with remote state and an OCI image, so every key has a place to show. */
function baseline(): Raw {
  return baseSettings({ backend: { type: "gcs", bucket: "test-project-state" }, ociImages: { ingest: { package: "oci-ingest", version: "1.0.0" } } });
}

/** Where a change must show: a resource (type and logical-id prefix), the provider, or the backend. */
type Where = readonly [type: string, idPrefix: string] | "provider" | "backend";
interface Case {
  readonly set: (raw: Raw) => void;
  readonly where: Where;
  /** A fragment of the block's JSON that the change must bring (and that the baseline lacks). */
  readonly shows: string;
  /** The block must become exactly `shows` (e.g. "[]": the resource is gone). @default false */
  readonly inverse?: boolean;
  /** A stack other than infra. @default "infra" */
  readonly stack?: "bootstrap";
  /** Other places that use the key, each with the fragment it must bring: a key used twice can be dropped from one. @default [] */
  readonly also?: ReadonlyArray<readonly [Where, string]>;
}

const host = (raw: Raw) => raw.hosts.vm;
const instance: Where = ["google_compute_instance", "vm-vm_Instance"];
const deploy: Where = ["null_resource", "vm-deploy_Deploy"];
const build: Where = ["null_resource", "base-build_Build"];
const image: Where = ["google_compute_image", "base-image_Image"];
const push: Where = ["null_resource", "ingest-oci_Push"];
const firewall: Where = ["google_compute_firewall", "vm-vm_SshFirewall"];

const CASES: Record<string, Case> = {
  project: {
    set: (r) => (r.project = "other-project"),
    where: "provider",
    shows: '"project":"other-project"',
    also: [
      [["google_project_iam_member", "vm-vm_"], '"project":"other-project"'],
      [deploy, '"DEPLOY_PROJECT":"other-project"'],
      [["google_artifact_registry_repository", "Registry"], '"project":"other-project"'],
    ],
  },
  region: {
    set: (r) => ((r.region = "europe-west4"), (r.zone = "europe-west4-a")),
    where: "provider",
    shows: '"region":"europe-west4"',
    also: [
      [["google_storage_bucket", "ImageBucket"], '"location":"EUROPE-WEST4"'],
      [["google_artifact_registry_repository", "Registry"], '"location":"europe-west4"'],
    ],
  },
  zone: { set: (r) => (r.zone = "europe-west1-c"), where: instance, shows: '"zone":"europe-west1-c"', also: [[deploy, '"DEPLOY_ZONE":"europe-west1-c"']] },
  flake: { set: (r) => (r.flake = "./other"), where: build, shows: '"NIX_FLAKE":"./other"' },
  imageBucket: { set: (r) => (r.imageBucket = "other-images"), where: ["google_storage_bucket", "ImageBucket"], shows: '"name":"other-images"' },
  createImageBucket: { set: (r) => (r.createImageBucket = false), where: ["google_storage_bucket", "ImageBucket"], shows: "[]", inverse: true },
  imageBucketLocation: { set: (r) => (r.imageBucketLocation = "EU"), where: ["google_storage_bucket", "ImageBucket"], shows: '"location":"EU"' },
  imageStorageLocation: { set: (r) => (r.imageStorageLocation = "eu"), where: image, shows: '"storage_locations":["eu"]' },
  labels: { set: (r) => (r.labels = { team: "data" }), where: "provider", shows: '"team":"data"' },
  stateDir: { set: (r) => (r.stateDir = "state"), where: deploy, shows: '"DEPLOY_KNOWN_HOSTS":"state/known_hosts/infra"' },
  "backend.type": { set: (r) => (r.backend = { type: "local" }), where: "backend", shows: '"local":{"path":' },
  "backend.bucket": { set: (r) => (r.backend.bucket = "other-state"), where: "backend", shows: '"bucket":"other-state"' },
  "backend.prefix": { set: (r) => (r.backend.prefix = "teams/data"), where: "backend", shows: '"prefix":"teams/data/infra"' },
  "deploy.user": { set: (r) => (r.deploy = { user: "ops" }), where: deploy, shows: '"DEPLOY_SSH_USER":"ops"', also: [[instance, '"ssh-keys":"ops:ssh-ed25519 ']] },
  "deploy.package": { set: (r) => (r.deploy = { package: "my-deploy" }), where: deploy, shows: '"DEPLOY_RS_INSTALLABLE":".#my-deploy"' },
  "deploy.sshWaitSeconds": { set: (r) => (r.deploy = { sshWaitSeconds: 77 }), where: deploy, shows: '"DEPLOY_WAIT_SECONDS":"77"' },
  "deploy.confirmTimeoutSeconds": { set: (r) => (r.deploy = { confirmTimeoutSeconds: 31 }), where: deploy, shows: '"DEPLOY_CONFIRM_TIMEOUT":"31"' },
  "deploy.activationTimeoutSeconds": {
    set: (r) => (r.deploy = { activationTimeoutSeconds: 241 }),
    where: deploy,
    shows: '"DEPLOY_ACTIVATION_TIMEOUT":"241"',
  },
  "registry.repository": { set: (r) => (r.registry = { repository: "other" }), where: ["google_artifact_registry_repository", "Registry"], shows: '"repository_id":"other"' },
  "registry.keepVersions": { set: (r) => (r.registry = { keepVersions: 3 }), where: ["google_artifact_registry_repository", "Registry"], shows: '"keep_count":3' },
  "images.*.nixosConfiguration": {
    set: (r) => (r.images.base.nixosConfiguration = "other"),
    where: build,
    shows: '"NIX_ATTRIBUTE":"nixosConfigurations.other.config.system.build.googleComputeImage"',
  },
  "images.*.family": { set: (r) => (r.images.base.family = "nixos-other"), where: image, shows: '"family":"nixos-other"' },
  "images.*.public": { set: (r) => (r.images.base.public = true), where: ["google_compute_image_iam_member", "base-image"], shows: '"role":"roles/compute.imageUser"' },
  "images.*.guestOsFeatures": {
    set: (r) => (r.images.base.guestOsFeatures = ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC", "UEFI_COMPATIBLE"]),
    where: image,
    shows: '{"type":"GVNIC"}',
    // UEFI_COMPATIBLE sets the boot mode the deploy step checks the host against.
    also: [[deploy, '"DEPLOY_EXPECTED_BOOT":"efi"']],
  },
  "hosts.*.nixosConfiguration": { set: (r) => (host(r).nixosConfiguration = "worker"), where: deploy, shows: '"DEPLOY_CONFIGURATION":"worker"' },
  "hosts.*.image": {
    set: (r) => ((r.images.other = { nixosConfiguration: "other", family: "nixos-other" }), (host(r).image = "other")),
    where: instance,
    shows: '"image":"${google_compute_image.other-image_Image',
  },
  "hosts.*.machineType": { set: (r) => (host(r).machineType = "e2-medium"), where: instance, shows: '"machine_type":"e2-medium"' },
  "hosts.*.diskSizeGb": { set: (r) => (host(r).diskSizeGb = 33), where: instance, shows: '"size":33' },
  "hosts.*.diskType": { set: (r) => (host(r).diskType = "pd-ssd"), where: instance, shows: '"type":"pd-ssd"' },
  "hosts.*.network": { set: (r) => (host(r).network = "data-net"), where: instance, shows: '"network":"data-net"', also: [[firewall, '"network":"data-net"']] },
  "hosts.*.subnetwork": { set: (r) => (host(r).subnetwork = "data-sub"), where: instance, shows: '"subnetwork":"data-sub"' },
  "hosts.*.tags": { set: (r) => (host(r).tags = ["etl"]), where: instance, shows: '"tags":["etl"]' },
  "hosts.*.labels": { set: (r) => (host(r).labels = { tier: "batch" }), where: instance, shows: '"tier":"batch"' },
  "hosts.*.externalIp": { set: (r) => (host(r).externalIp = true), where: instance, shows: '"access_config":[{}]' },
  "hosts.*.sshSourceRanges": {
    set: (r) => (host(r).sshSourceRanges = ["203.0.113.0/24"]),
    where: firewall,
    shows: '"source_ranges":["203.0.113.0/24"]',
  },
  "hosts.*.sshKeys": { set: (r) => (host(r).sshKeys = [`${REAL_KEY} other@example`]), where: instance, shows: "other@example" },
  "hosts.*.deletionProtection": { set: (r) => (host(r).deletionProtection = true), where: instance, shows: '"deletion_protection":true' },
  "hosts.*.recreateOnImageChange": { set: (r) => (host(r).recreateOnImageChange = true), where: instance, shows: '"create_before_destroy":true' },
  "hosts.*.runsOciImages": {
    set: (r) => (host(r).runsOciImages = ["ingest"]),
    where: ["google_artifact_registry_repository_iam_member", "Registry_Read-vm"],
    shows: '"role":"roles/artifactregistry.reader"',
  },
  secretLocations: {
    set: (r) => ((r.secretLocations = ["europe-west4"]), (host(r).secrets = { token: {} })),
    where: ["google_secret_manager_secret", "secret-token"],
    shows: '"replicas":[{"location":"europe-west4"}]',
  },
  "ociImages.*.package": { set: (r) => (r.ociImages.ingest.package = "oci-other"), where: push, shows: '"OCI_PACKAGE":"oci-other"' },
  "ociImages.*.version": { set: (r) => (r.ociImages.ingest.version = "2.0.0"), where: push, shows: '"OCI_TAG":"2.0.0-' },
};

/** Leaf keys of the published schema; records of objects (images, hosts, ociImages) contribute `<record>.*.<key>`. */
function leafKeys(schema: any, path: string[] = []): string[] {
  const alternatives = [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])];
  if (alternatives.length) return [...new Set(alternatives.flatMap((a: any) => leafKeys(a, path)))];
  if (schema.type === "object" && schema.properties) return Object.entries(schema.properties).flatMap(([k, v]) => leafKeys(v, [...path, k]));
  if (schema.type === "object" && schema.additionalProperties?.type === "object" && schema.additionalProperties.properties) {
    return leafKeys(schema.additionalProperties, [...path, "*"]);
  }
  return [path.join(".")];
}

function synth(raw: Raw, stack: "infra" | "bootstrap" = "infra"): any {
  const settings = parseSettings(raw, "coverage");
  const app = Testing.app();
  const built = stack === "infra" ? new InfraStack(app, "infra", { settings, resolved: staticResolved(settings) }) : new BootstrapStack(app, "bootstrap", { settings });
  return JSON.parse(Testing.synth(built));
}

function block(json: any, where: Where): string {
  if (where === "provider") return JSON.stringify(json.provider?.google ?? null);
  if (where === "backend") return JSON.stringify(json.terraform?.backend ?? null);
  const [type, prefix] = where;
  const hits = Object.entries(json.resource?.[type] ?? {}).filter(([id]) => id.startsWith(prefix));
  return JSON.stringify(hits.map(([, b]) => b));
}

describe("every settings key reaches the synthesized output", () => {
  test("the table covers every key of the schema, and only those", () => {
    const keys = leafKeys(settingsJsonSchema()).sort();
    expect([...Object.keys(CASES), ...Object.keys(NOT_IN_OUTPUT)].sort()).toEqual(keys);
  });

  const before = synth(baseline());
  test.each(Object.entries(CASES))("%s", (_key, c) => {
    const raw = baseline();
    c.set(raw);
    const after = synth(raw, c.stack);
    const old = block(c.stack ? synth(baseline(), c.stack) : before, c.where);
    if (c.inverse) {
      expect(old).not.toBe(c.shows);
      expect(block(after, c.where)).toBe(c.shows);
    } else {
      expect(old).not.toContain(c.shows);
      expect(block(after, c.where)).toContain(c.shows);
    }
    for (const [where, shows] of c.also ?? []) {
      expect(block(before, where)).not.toContain(shows);
      expect(block(after, where)).toContain(shows);
    }
  });
});
