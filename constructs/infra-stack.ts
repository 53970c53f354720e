/** The main stack: image chain, hosts and their deploys, OCI images. */
import { NullProvider } from "@cdktf/provider-null/lib/provider/index.js";
import { TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import type { Resolved } from "../lib/nix.js";
import { knownHostsFile } from "../lib/paths.js";
import type { Settings } from "../lib/settings.js";
import { useBackend, useGoogleProvider } from "../lib/stack-setup.js";
import { GceImage } from "./gce-image.js";
import { ImageRegistry } from "./image-registry.js";
import { OciImage } from "./oci-image.js";
import { ImageBucket } from "./image-bucket.js";
import { DeployRs } from "./deploy-rs.js";
import { NixImage } from "./nix-image.js";
import { Vm } from "./vm.js";

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
  public readonly vms: Record<string, Vm> = {};

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
    for (const [imageId, image] of Object.entries(settings.images)) {
      const build = new NixImage(this, `${imageId}-build`, {
        flake: settings.flake,
        configuration: image.nixosConfiguration,
        planned: resolved.images[imageId],
        gcRootDir: `${settings.stateDir}/gcroots`,
      });
      this.images[imageId] = new GceImage(this, `${imageId}-image`, {
        build,
        bucket: bucket.name,
        family: image.family,
        public: image.public,
        guestOsFeatures: image.guestOsFeatures,
        labels: { "image-id": imageId },
      });
      new TerraformOutput(this, `image-${imageId}-name`, { value: this.images[imageId].name });
    }
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
      new TerraformOutput(this, `oci-${ociId}-reference`, { value: image.reference });
      new TerraformOutput(this, `oci-${ociId}-digest-reference`, { value: image.digestReference });
    }

    for (const [hostId, host] of Object.entries(settings.hosts)) {
      const vm = new Vm(this, `${hostId}-vm`, {
        name: hostId,
        project: settings.project,
        zone: settings.zone,
        image: this.images[host.image].selfLink,
        machineType: host.machineType,
        diskSizeGb: host.diskSizeGb,
        diskType: host.diskType,
        network: host.network,
        subnetwork: host.subnetwork,
        tags: host.tags,
        labels: { ...host.labels, host: hostId },
        externalIp: host.externalIp,
        sshSourceRanges: host.sshSourceRanges,
        deployUser: settings.deploy.user,
        sshKeys: host.sshKeys,
        deletionProtection: host.deletionProtection,
        recreateOnImageChange: host.recreateOnImageChange,
      });
      this.vms[hostId] = vm;
      if (registry && host.runsOciImages.length > 0) registry.grantRead(hostId, vm.serviceAccount.member);
      new DeployRs(this, `${hostId}-deploy`, {
        flake: settings.flake,
        node: hostId,
        toplevel: resolved.hosts[hostId].toplevel,
        vm,
        project: settings.project,
        zone: settings.zone,
        sshUser: settings.deploy.user,
        knownHostsFile: knownHostsFile(settings.stateDir, id),
        package: settings.deploy.package,
        sshWaitSeconds: settings.deploy.sshWaitSeconds,
        confirmTimeoutSeconds: settings.deploy.confirmTimeoutSeconds,
        activationTimeoutSeconds: settings.deploy.activationTimeoutSeconds,
      });
      new TerraformOutput(this, `host-${hostId}-toplevel`, { value: resolved.hosts[hostId].toplevel });
      new TerraformOutput(this, `host-${hostId}-address`, { value: vm.sshAddress });
      new TerraformOutput(this, `host-${hostId}-instance-id`, { value: vm.instance.instanceId });
      new TerraformOutput(this, `host-${hostId}-service-account`, { value: vm.serviceAccount.email });
    }
  }
}
