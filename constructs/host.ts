import { ComputeFirewall } from "@cdktf/provider-google/lib/compute-firewall/index.js";
import { ComputeInstance } from "@cdktf/provider-google/lib/compute-instance/index.js";
import { ProjectIamMember } from "@cdktf/provider-google/lib/project-iam-member/index.js";
import { ServiceAccount } from "@cdktf/provider-google/lib/service-account/index.js";
import { Annotations, TerraformOutput } from "cdktf";
import { makeUniqueId } from "cdktf/lib/private/unique.js";
import { Construct } from "constructs";
import { DISK_ARCHITECTURE } from "../lib/gce.js";
import { firewallName, hostOutputId, instanceName as instanceNameFor, serviceAccountId, type HostOutputKey } from "../lib/names.js";
import type { ResolvedHost } from "../lib/nix.js";
import type { HostSettings, Settings } from "../lib/settings.js";
import { literal } from "../lib/steps.js";
import { DeployRs, type SshEnv } from "./deploy-rs.js";
import type { GceImage } from "./gce-image.js";
import type { ImageRegistry } from "./image-registry.js";

/** Google's source range for Identity-Aware Proxy TCP forwarding. */
export const IAP_SOURCE_RANGE = "35.235.240.0/20";

const ARCHITECTURE = "boot_disk[0].initialize_params[0].architecture";

/**
 * How much of the internet the ranges admit, when it is more than any private
 * block (10.0.0.0/8 is 2^24 addresses): "the whole internet", or a share of it.
 * Counted per range, as written: "0.0.0.0/1" and "128.0.0.0/1" are the whole.
 */
function openTo(ranges: readonly string[]): string | undefined {
  const addresses = ranges.reduce((sum, range) => sum + 2 ** (32 - Number(range.split("/")[1] ?? 32)), 0);
  if (addresses >= 2 ** 32) return "the whole internet";
  return addresses >= 2 ** 25 ? `1/${Math.round(2 ** 32 / addresses)} of the internet` : undefined;
}

/** Roles every host needs: writing its logs and metrics. Nothing else by default. */
export const HOST_ROLES = ["roles/logging.logWriter", "roles/monitoring.metricWriter"];

export interface HostProps {
  /** Host id: the instance name (with a suffix under recreateOnImageChange), the deploy node, and the outputs' prefix. */
  readonly name: string;
  /** The host's settings (hosts.<id>), checked by lib/settings.ts: the constructor does not check them again. */
  readonly host: HostSettings;
  /** The deploy settings every host shares. */
  readonly deploy: Settings["deploy"];
  /** Project of the service account's role bindings. */
  readonly project: string;
  readonly zone: string;
  /** Flake reference as the user wrote it. */
  readonly flake: string;
  /** The image the VM first boots. */
  readonly image: GceImage;
  /** Nix system of the host's configuration and image: it gives the boot disk's architecture. */
  readonly system: keyof typeof DISK_ARCHITECTURE;
  /** The host's planned system. */
  readonly planned: ResolvedHost;
  /** How its configuration boots: "efi" for UEFI_COMPATIBLE images (lib/configurations.ts computes it as the flake does). */
  readonly boot: "efi" | "bios";
  /** known_hosts file of the stack, relative to the project root. */
  readonly knownHostsFile: string;
  /** The repository of host.runsOciImages; required when that list is not empty. @default undefined */
  readonly registry?: ImageRegistry;
}

/**
 * One NixOS host: its own service account, an SSH firewall rule, the
 * instance, the deploy-rs step, registry grants and outputs.
 *
 * The construct id is `<host>-vm` and the deploy step keeps the logical id
 * it had before this construct existed: both are a contract, and changing
 * them would replace running VMs (or redeploy them).
 */
export class Host extends Construct {
  public readonly instance: ComputeInstance;
  public readonly serviceAccount: ServiceAccount;
  public readonly firewall: ComputeFirewall;
  public readonly deployStep: DeployRs;
  /** "iap" (default) or "direct" (sshSourceRanges given). */
  public readonly connect: "iap" | "direct";
  /** Where deploys connect: the instance name through IAP, or the external IP. */
  public readonly sshAddress: string;
  /** What deploys and `npm run rollback` use to reach the host. */
  public readonly ssh: SshEnv;

  constructor(scope: Construct, id: string, props: HostProps) {
    super(scope, id);
    const { name, host } = props;
    const direct = host.sshSourceRanges !== undefined;
    // Wiring, not a setting: the stack passes the registry when any OCI image exists.
    if (host.runsOciImages.length > 0 && !props.registry) {
      throw new Error(`Host ${name}: runsOciImages needs the registry`);
    }
    const open = openTo(host.sshSourceRanges ?? []);
    if (open) Annotations.of(this).addWarning(`host "${name}" accepts SSH from ${open} (sshSourceRanges ${host.sshSourceRanges!.join(", ")})`);
    const externalIp = host.externalIp ?? direct;
    if (externalIp && host.network === "default") {
      Annotations.of(this).addWarning(
        `host "${name}" has an external IP on the "default" network, whose default-allow-ssh rule (if not deleted) admits SSH from anywhere; use a dedicated network`,
      );
    }
    if (host.sshKeys.length === 0) {
      Annotations.of(this).addWarning(`host "${name}" has no sshKeys: its deploy cannot log in as "${props.deploy.user}"`);
    }
    // Replacing a VM when its image changes creates the new one first, beside
    // the old one, so it needs a name of its own: a suffix from its boot disk.
    const instanceName = instanceNameFor(name, host.recreateOnImageChange, { image: props.image.plannedName, sizeGb: host.diskSizeGb, type: host.diskType });
    this.connect = direct ? "direct" : "iap";

    this.serviceAccount = new ServiceAccount(this, "ServiceAccount", {
      accountId: serviceAccountId(name),
      displayName: `NixOS host ${name}`,
    });
    HOST_ROLES.forEach((role) => {
      new ProjectIamMember(this, role.replace("roles/", "").replace(/\./g, "-"), {
        project: props.project,
        role,
        member: this.serviceAccount.member,
      });
    });

    this.firewall = new ComputeFirewall(this, "SshFirewall", {
      name: firewallName(name),
      network: host.network,
      direction: "INGRESS",
      allow: [{ protocol: "tcp", ports: ["22"] }],
      sourceRanges: direct ? host.sshSourceRanges : [IAP_SOURCE_RANGE],
      targetServiceAccounts: [this.serviceAccount.email],
      description: direct ? `SSH to ${name} from sshSourceRanges` : `SSH to ${name} through Identity-Aware Proxy only`,
    });

    this.instance = new ComputeInstance(this, "Instance", {
      name: instanceName,
      zone: props.zone,
      machineType: host.machineType,
      allowStoppingForUpdate: true,
      deletionProtection: host.deletionProtection,
      tags: host.tags,
      labels: { ...host.labels, host: name },
      bootDisk: {
        initializeParams: { image: props.image.selfLink, size: host.diskSizeGb, type: host.diskType, architecture: DISK_ARCHITECTURE[props.system] },
      },
      networkInterface: [
        {
          network: host.network,
          subnetwork: host.subnetwork,
          accessConfig: externalIp ? [{}] : [],
        },
      ],
      // The dedicated account's IAM roles bound what the VM may do; the scope only stops being a second, coarser filter.
      serviceAccount: { email: this.serviceAccount.email, scopes: ["cloud-platform"] },
      metadata: {
        // Key comments are free text: escaped so Terraform does not read "${" in them as a template.
        "ssh-keys": literal(host.sshKeys.map((key) => `${props.deploy.user}:${key}`).join("\n")),
        // Keys come from this metadata only: no OS Login, no project-wide keys.
        "enable-oslogin": "FALSE",
        "block-project-ssh-keys": "TRUE",
        // The interactive serial console bypasses SSH, its keys and the firewall; a project-wide TRUE would reach this VM otherwise.
        "serial-port-enable": "FALSE",
      },
      // Default: the image is only the first boot; deploy-rs converges the
      // host. With recreateOnImageChange the new VM exists before the old one
      // goes, so a failed build or import leaves the old VM running.
      // The architecture counts when a VM is created: VMs created before it was
      // set may read back without one, and it is ForceNew. A new system is a
      // new image anyway (its store path differs), so nothing is lost.
      lifecycle: host.recreateOnImageChange
        ? { createBeforeDestroy: true, ignoreChanges: [ARCHITECTURE] }
        : { ignoreChanges: ["boot_disk[0].initialize_params[0].image", ARCHITECTURE] },
    });
    this.sshAddress = direct ? this.instance.networkInterface.get(0).accessConfig.get(0).natIp : instanceName;
    this.ssh = {
      DEPLOY_HOST: this.sshAddress,
      DEPLOY_CONNECT: this.connect,
      DEPLOY_SSH_USER: props.deploy.user,
      DEPLOY_SSH_PORT: "22",
      DEPLOY_PROJECT: props.project,
      DEPLOY_ZONE: props.zone,
      DEPLOY_INSTANCE: instanceName,
      DEPLOY_INSTANCE_ID: this.instance.instanceId,
      DEPLOY_KNOWN_HOSTS: props.knownHostsFile,
    };

    if (host.runsOciImages.length > 0) props.registry!.grantRead(name, this.serviceAccount.member);

    this.deployStep = new DeployRs(this, "Deploy", {
      flake: props.flake,
      node: name,
      configuration: props.planned.nixosConfiguration,
      toplevel: props.planned.toplevel,
      image: { attribute: props.image.build.environment.NIX_ATTRIBUTE, storePath: props.image.build.storePath },
      boot: props.boot,
      instanceAddress: `${this.instance.terraformResourceType}.${this.instance.friendlyUniqueId}`,
      ssh: this.ssh,
      dependsOn: [this.instance, this.firewall],
      package: props.deploy.package,
      sshWaitSeconds: props.deploy.sshWaitSeconds,
      confirmTimeoutSeconds: props.deploy.confirmTimeoutSeconds,
      activationTimeoutSeconds: props.deploy.activationTimeoutSeconds,
    });
    // The logical id the step had when it was the stack's "<host>-deploy" construct.
    this.deployStep.deploy.overrideLogicalId(makeUniqueId([`${name}-deploy`, "Deploy"]));

    const output = (key: HostOutputKey, value: string) => new TerraformOutput(this, key, { value }).overrideLogicalId(hostOutputId(name, key));
    output("toplevel", props.planned.toplevel);
    output("address", this.sshAddress);
    output("instance-id", this.instance.instanceId);
    output("instance-name", instanceName);
    output("service-account", this.serviceAccount.email);
  }
}
