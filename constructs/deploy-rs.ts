import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { type ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { STORE_PATH } from "../lib/gce.js";
import { localExec } from "../lib/steps.js";

export const DEPLOY_SCRIPT = "constructs/deploy-rs.sh";
/** Checks the flake before Terraform destroys a replaced step (see the script). */
export const DESTROY_DEPLOY_SCRIPT = "constructs/deploy-rs-destroy.sh";

/** How deploys and rollbacks reach a host (constructs/deploy-rs-ssh-config.sh; bin/rollback.ts builds the same). */
export interface SshEnv {
  readonly DEPLOY_HOST: string;
  readonly DEPLOY_CONNECT: "iap" | "direct";
  readonly DEPLOY_SSH_USER: string;
  readonly DEPLOY_SSH_PORT: string;
  readonly DEPLOY_PROJECT: string;
  readonly DEPLOY_ZONE: string;
  /** Instance name (the IAP tunnel's target). */
  readonly DEPLOY_INSTANCE: string;
  readonly DEPLOY_INSTANCE_ID: string;
  /** known_hosts file of the stack, relative to the project root. */
  readonly DEPLOY_KNOWN_HOSTS: string;
}

/** DeployRs step. */
export interface DeployEnv extends SshEnv {
  readonly DEPLOY_FLAKE: string;
  /** deploy.nodes attribute (the host id). */
  readonly DEPLOY_NODE: string;
  /** nixosConfigurations attribute the node deploys; checked against the plan before deploying. */
  readonly DEPLOY_CONFIGURATION: string;
  /** Installable that provides bin/deploy: `<flake>#<deploy.package>`. */
  readonly DEPLOY_RS_INSTALLABLE: string;
  readonly DEPLOY_EXPECTED_SYSTEM: string;
  /** How the configuration boots (lib/configurations.ts); the step refuses a host that booted the other way. */
  readonly DEPLOY_EXPECTED_BOOT: "efi" | "bios";
  /** Terraform address of the host's instance, for the refusal's `terraform apply -replace=`. */
  readonly DEPLOY_INSTANCE_ADDRESS: string;
  readonly DEPLOY_WAIT_SECONDS: string;
  readonly DEPLOY_CONFIRM_TIMEOUT: string;
  readonly DEPLOY_ACTIVATION_TIMEOUT: string;
}

/**
 * DeployRs destroy step. A destroy step may refer to nothing but itself, so
 * every value is a literal of the plan.
 */
export interface DestroyDeployEnv {
  readonly DEPLOY_FLAKE: string;
  readonly DEPLOY_NODE: string;
  readonly DEPLOY_CONFIGURATION: string;
  readonly DEPLOY_EXPECTED_SYSTEM: string;
  /** The planned build of the image the host's VM refers to. */
  readonly DEPLOY_IMAGE_ATTRIBUTE: string;
  readonly DEPLOY_EXPECTED_IMAGE: string;
}

export interface DeployRsProps {
  /** Flake reference as the user wrote it. */
  readonly flake: string;
  /** deploy.nodes attribute of the flake (the host id). */
  readonly node: string;
  /** nixosConfigurations attribute the node deploys; the step checks it against the plan before deploying. */
  readonly configuration: string;
  /** Planned system.build.toplevel of the host; the deploy must end with it active. */
  readonly toplevel: string;
  /**
   * The planned build of the image the host's VM refers to. Terraform
   * destroys a replaced step before that build runs, so the step checks it
   * first (constructs/deploy-rs-destroy.sh).
   */
  readonly image: { readonly attribute: string; readonly storePath: string };
  /**
   * How the configuration boots: "efi" when the flake builds it for
   * UEFI_COMPATIBLE images (lib/configurations.ts). A kept VM boots the way
   * its first image did, so the step refuses a host that booted the other way.
   */
  readonly boot: "efi" | "bios";
  /** Terraform address of the host's instance, named in that refusal. */
  readonly instanceAddress: string;
  /** How the step reaches the host (the same values `npm run rollback` uses). */
  readonly ssh: SshEnv;
  /** What must exist before the first deploy: the instance and its firewall rule. */
  readonly dependsOn: ITerraformDependable[];
  /** packages.<system> attribute of the flake providing deploy-rs. @default "deploy-rs" */
  readonly package?: string;
  /** Bound on waiting for SSH on a new VM. @default 300 */
  readonly sshWaitSeconds?: number;
  /** @default 30 */
  readonly confirmTimeoutSeconds?: number;
  /** @default 240 */
  readonly activationTimeoutSeconds?: number;
}

/**
 * Provisions a host with deploy-rs after its VM exists. Runs again exactly
 * when the host's planned system changes or its instance is replaced.
 */
export class DeployRs extends Construct {
  public readonly deploy: Resource;

  constructor(scope: Construct, id: string, props: DeployRsProps) {
    super(scope, id);
    for (const [key, path] of Object.entries({ toplevel: props.toplevel, "image.storePath": props.image.storePath })) {
      if (!STORE_PATH.test(path)) throw new Error(`DeployRs: ${key} "${path}" is not a Nix store path`);
    }
    if (props.boot !== "efi" && props.boot !== "bios") throw new Error(`DeployRs: boot must be "efi" or "bios" (got ${JSON.stringify(props.boot)})`);
    for (const [key, value] of Object.entries({
      sshWaitSeconds: props.sshWaitSeconds,
      confirmTimeoutSeconds: props.confirmTimeoutSeconds,
      activationTimeoutSeconds: props.activationTimeoutSeconds,
    })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new Error(`DeployRs: ${key} must be a positive whole number of seconds (got ${value})`);
    }
    this.deploy = new Resource(this, "Deploy", {
      triggers: { toplevel: props.toplevel, instance_id: props.ssh.DEPLOY_INSTANCE_ID },
      dependsOn: props.dependsOn,
      provisioners: [
        localExec<DeployEnv>(DEPLOY_SCRIPT, {
          ...props.ssh,
          DEPLOY_FLAKE: props.flake,
          DEPLOY_NODE: props.node,
          DEPLOY_CONFIGURATION: props.configuration,
          DEPLOY_RS_INSTALLABLE: `${props.flake}#${props.package ?? "deploy-rs"}`,
          DEPLOY_EXPECTED_SYSTEM: props.toplevel,
          DEPLOY_EXPECTED_BOOT: props.boot,
          DEPLOY_INSTANCE_ADDRESS: props.instanceAddress,
          DEPLOY_WAIT_SECONDS: String(props.sshWaitSeconds ?? 300),
          DEPLOY_CONFIRM_TIMEOUT: String(props.confirmTimeoutSeconds ?? 30),
          DEPLOY_ACTIVATION_TIMEOUT: String(props.activationTimeoutSeconds ?? 240),
        }),
        {
          ...localExec<DestroyDeployEnv>(DESTROY_DEPLOY_SCRIPT, {
            DEPLOY_FLAKE: props.flake,
            DEPLOY_NODE: props.node,
            DEPLOY_CONFIGURATION: props.configuration,
            DEPLOY_EXPECTED_SYSTEM: props.toplevel,
            DEPLOY_IMAGE_ATTRIBUTE: props.image.attribute,
            DEPLOY_EXPECTED_IMAGE: props.image.storePath,
          }),
          when: "destroy",
        },
      ],
    });
  }
}
