import { ComputeFirewall } from "@cdktf/provider-google/lib/compute-firewall/index.js";
import { ComputeInstance } from "@cdktf/provider-google/lib/compute-instance/index.js";
import { ProjectIamMember } from "@cdktf/provider-google/lib/project-iam-member/index.js";
import { ServiceAccount } from "@cdktf/provider-google/lib/service-account/index.js";
import { Annotations } from "cdktf";
import { Construct } from "constructs";
import { createHash } from "node:crypto";
import { GCE_NAME, GCE_NAME_RULE } from "../lib/gce.js";

/** Google's source range for Identity-Aware Proxy TCP forwarding. */
export const IAP_SOURCE_RANGE = "35.235.240.0/20";

/** Roles every host needs: writing its logs and metrics. Nothing else by default. */
export const HOST_ROLES = ["roles/logging.logWriter", "roles/monitoring.metricWriter"];

export interface VmProps {
  /** Instance name; also names the firewall rule and service account. */
  readonly name: string;
  /** Project of the service account's role bindings. */
  readonly project: string;
  readonly zone: string;
  /** Self link or name of the image the VM first boots. */
  readonly image: string;
  readonly machineType: string;
  /** @default 20 */
  readonly diskSizeGb?: number;
  /** @default "pd-balanced" */
  readonly diskType?: string;
  /** @default "default" */
  readonly network?: string;
  /** @default the network's automatic subnetwork */
  readonly subnetwork?: string;
  /** Extra network tags. @default [] */
  readonly tags?: string[];
  /** @default {} */
  readonly labels?: Record<string, string>;
  /**
   * An ephemeral external IP. IAP deploys need none, and deploy-rs copies
   * closures from the deploying machine, so the VM needs no egress.
   * @default true with sshSourceRanges, false otherwise
   */
  readonly externalIp?: boolean;
  /**
   * Open SSH from these ranges and deploy over the external IP. Without it,
   * only Google's IAP range may connect, and deploys tunnel through IAP.
   * @default undefined (IAP only)
   */
  readonly sshSourceRanges?: string[];
  /** User whose SSH keys the metadata carries (the deploy-rs SSH user). */
  readonly deployUser: string;
  /** OpenSSH public key lines for deployUser. @default [] (synth warns) */
  readonly sshKeys?: string[];
  /** @default false */
  readonly deletionProtection?: boolean;
  /**
   * Replace the VM when its image changes. By default the image is only the
   * first boot and later image changes are ignored: deploy-rs converges hosts.
   * @default false
   */
  readonly recreateOnImageChange?: boolean;
}

/** A NixOS VM with its own service account, SSH firewall rule and instance. */
export class Vm extends Construct {
  public readonly instance: ComputeInstance;
  public readonly serviceAccount: ServiceAccount;
  public readonly firewall: ComputeFirewall;
  /** "iap" (default) or "direct" (sshSourceRanges given). */
  public readonly connect: "iap" | "direct";
  /** Where deploys connect: the instance name through IAP, or the external IP. */
  public readonly sshAddress: string;

  constructor(scope: Construct, id: string, props: VmProps) {
    super(scope, id);
    const { name } = props;
    if (!GCE_NAME.test(name)) throw new Error(`Vm: name "${name}" is not a valid GCE name (${GCE_NAME_RULE})`);
    const direct = props.sshSourceRanges !== undefined;
    if (direct && props.externalIp === false) {
      throw new Error(`Vm ${name}: sshSourceRanges needs externalIp (deploys connect to the external IP); remove sshSourceRanges to deploy through IAP`);
    }
    if (direct && props.sshSourceRanges!.length === 0) {
      throw new Error(`Vm ${name}: sshSourceRanges is empty; list the ranges allowed to SSH, or remove the key to deploy through IAP`);
    }
    if (props.sshSourceRanges?.includes("0.0.0.0/0")) {
      Annotations.of(this).addWarning(`host "${name}" accepts SSH from the whole internet (sshSourceRanges contains 0.0.0.0/0)`);
    }
    const externalIp = props.externalIp ?? direct;
    const network = props.network ?? "default";
    if (externalIp && network === "default") {
      Annotations.of(this).addWarning(
        `host "${name}" has an external IP on the "default" network, whose default-allow-ssh rule (if not deleted) admits SSH from anywhere; use a dedicated network`,
      );
    }
    const keys = props.sshKeys ?? [];
    if (keys.length === 0) {
      Annotations.of(this).addWarning(`host "${name}" has no sshKeys: its deploy cannot log in as "${props.deployUser}"`);
    }
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
      name: `${name.slice(0, 55)}-ssh`,
      network,
      direction: "INGRESS",
      allow: [{ protocol: "tcp", ports: ["22"] }],
      sourceRanges: direct ? props.sshSourceRanges : [IAP_SOURCE_RANGE],
      targetServiceAccounts: [this.serviceAccount.email],
      description: direct ? `SSH to ${name} from sshSourceRanges` : `SSH to ${name} through Identity-Aware Proxy only`,
    });

    this.instance = new ComputeInstance(this, "Instance", {
      name,
      zone: props.zone,
      machineType: props.machineType,
      allowStoppingForUpdate: true,
      deletionProtection: props.deletionProtection ?? false,
      tags: props.tags,
      labels: props.labels,
      bootDisk: {
        initializeParams: { image: props.image, size: props.diskSizeGb ?? 20, type: props.diskType ?? "pd-balanced" },
      },
      networkInterface: [
        {
          network,
          subnetwork: props.subnetwork,
          accessConfig: externalIp ? [{}] : [],
        },
      ],
      // The dedicated account's IAM roles bound what the VM may do; the scope only stops being a second, coarser filter.
      serviceAccount: { email: this.serviceAccount.email, scopes: ["cloud-platform"] },
      metadata: {
        "ssh-keys": keys.map((key) => `${props.deployUser}:${key}`).join("\n"),
        // Keys come from this metadata only: no OS Login, no project-wide keys.
        "enable-oslogin": "FALSE",
        "block-project-ssh-keys": "TRUE",
      },
      lifecycle: props.recreateOnImageChange ? undefined : { ignoreChanges: ["boot_disk[0].initialize_params[0].image"] },
    });
    this.sshAddress = direct ? this.instance.networkInterface.get(0).accessConfig.get(0).natIp : name;
  }
}

/** Service account ids are 6-30 characters; long host names keep a short hash to stay unique. */
export function serviceAccountId(host: string): string {
  const id = `host-${host}`;
  if (id.length <= 30) return id;
  const hash = createHash("sha256").update(host).digest("hex").slice(0, 6);
  return `host-${host.slice(0, 18).replace(/-+$/, "")}-${hash}`;
}
