/** The main stack: image chain, hosts and their deploys, OCI images. */
import { NullProvider } from "@cdktf/provider-null/lib/provider/index.js";
import { TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import type { Resolved } from "../lib/nix.js";
import { imageOutputId, ociOutputIds } from "../lib/names.js";
import { gcRootDir as gcRootDirOf, knownHostsFile } from "../lib/paths.js";
import type { Settings } from "../lib/settings.js";
import { useBackend, useGoogleProvider } from "../lib/stack-setup.js";
import { GceImage } from "./gce-image.js";
import { ImageRegistry } from "./image-registry.js";
import { OciImage } from "./oci-image.js";
import { ImageBucket } from "./image-bucket.js";
import { GcRoots } from "./gc-roots.js";
import { Host } from "./host.js";
import { NixImage } from "./nix-image.js";
import { Secret } from "./secret.js";

export interface InfraStackProps {
  readonly settings: Settings;
  /** Planned store paths, from `nix eval` or the lock file. */
  readonly resolved: Resolved;
}

/**
 * Construct ids here are a contract: they become Terraform logical ids, and
 * renaming one replaces its resources.
 */
export class InfraStack extends TerraformStack {
  public readonly images: Record<string, GceImage> = {};
  public readonly hosts: Record<string, Host> = {};

  constructor(scope: Construct, id: string, props: InfraStackProps) {
    super(scope, id);
    const { settings, resolved } = props;
    useBackend(this, id, settings);
    useGoogleProvider(this, settings);
    new NullProvider(this, "null");

    const bucket = new ImageBucket(this, "ImageBucket", {
      name: settings.imageBucket,
      location: settings.imageBucketLocation ?? settings.region,
      create: settings.createImageBucket,
    });
    const gcRootDir = gcRootDirOf(settings.stateDir);
    const builds: NixImage[] = [];
    for (const [imageId, image] of Object.entries(settings.images)) {
      const build = new NixImage(this, `${imageId}-build`, {
        flake: settings.flake,
        configuration: image.nixosConfiguration,
        planned: resolved.images[imageId],
        gcRootDir,
      });
      builds.push(build);
      this.images[imageId] = new GceImage(this, `${imageId}-image`, {
        build,
        bucket,
        family: image.family,
        public: image.public,
        guestOsFeatures: image.guestOsFeatures,
        labels: { "image-id": imageId },
        storageLocation: settings.imageStorageLocation ?? settings.region,
      });
      new TerraformOutput(this, imageOutputId(imageId), { value: this.images[imageId].name });
    }
    new GcRoots(this, "GcRoots", {
      dir: gcRootDir,
      keep: builds.map((b) => b.storeHash),
      after: [...builds.map((b) => b.build), ...Object.values(this.images).map((i) => i.image)],
    });

    const ociIds = Object.keys(settings.ociImages);
    const registry =
      ociIds.length === 0
        ? undefined
        : new ImageRegistry(this, "Registry", {
            project: settings.project,
            location: settings.region,
            repositoryId: settings.registry.repository,
            keepVersions: settings.registry.keepVersions,
          });
    for (const [ociId, oci] of Object.entries(settings.ociImages)) {
      const image = new OciImage(this, `${ociId}-oci`, {
        flake: settings.flake,
        name: ociId,
        version: oci.version,
        planned: resolved.ociImages[ociId],
        registry: registry!,
      });
      const outputs = ociOutputIds(ociId);
      new TerraformOutput(this, outputs.reference, { value: image.reference });
      new TerraformOutput(this, outputs.digestReference, { value: image.digestReference });
    }

    for (const [hostId, host] of Object.entries(settings.hosts)) {
      this.hosts[hostId] = new Host(this, `${hostId}-vm`, {
        name: hostId,
        host,
        deploy: settings.deploy,
        project: settings.project,
        zone: settings.zone,
        flake: settings.flake,
        image: this.images[host.image],
        system: settings.system,
        planned: resolved.hosts[hostId],
        // The flake builds a configuration for EFI when its images are UEFI_COMPATIBLE; the settings make them agree (lib/configurations.ts).
        boot: settings.images[host.image].guestOsFeatures.includes("UEFI_COMPATIBLE") ? "efi" : "bios",
        knownHostsFile: knownHostsFile(settings.stateDir, id),
        registry,
      });
    }

    // One secret per name; a host may read exactly the secrets it lists, and its deploy (which fetches them) comes after the grants.
    const secrets = new Map<string, Secret>();
    for (const [hostId, host] of Object.entries(settings.hosts)) {
      const deploy = this.hosts[hostId].deployStep.deploy;
      for (const name of Object.keys(host.secrets)) {
        if (!secrets.has(name)) secrets.set(name, new Secret(this, `secret-${name}`, { project: settings.project, secretId: name, locations: settings.secretLocations }));
        const grant = secrets.get(name)!.grantAccess(hostId, this.hosts[hostId].serviceAccount.member);
        deploy.dependsOn = [...(deploy.dependsOn ?? []), `${grant.terraformResourceType}.${grant.friendlyUniqueId}`];
      }
    }
  }
}
