import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { Construct } from "constructs";
import { STORE_PATH } from "../lib/gce.js";
import { PROJECT_ROOT_FROM_STACK } from "../lib/paths.js";
import { BASH, literal, SCRIPTS } from "../lib/scripts.js";
import type { Vm } from "./vm.js";

export interface DeployRsProps {
  /** Flake reference as the user wrote it. */
  readonly flake: string;
  /** deploy.nodes attribute of the flake (the host id). */
  readonly node: string;
  /** Planned system.build.toplevel of the host; the deploy must end with it active. */
  readonly toplevel: string;
  readonly vm: Vm;
  readonly project: string;
  readonly zone: string;
  /** SSH user deploy-rs connects as. */
  readonly sshUser: string;
  /** known_hosts file of the stack, relative to the project root. */
  readonly knownHostsFile: string;
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
    if (!STORE_PATH.test(props.toplevel)) throw new Error(`DeployRs: toplevel "${props.toplevel}" is not a Nix store path`);
    for (const [key, value] of Object.entries({
      sshWaitSeconds: props.sshWaitSeconds,
      confirmTimeoutSeconds: props.confirmTimeoutSeconds,
      activationTimeoutSeconds: props.activationTimeoutSeconds,
    })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new Error(`DeployRs: ${key} must be a positive whole number of seconds (got ${value})`);
    }
    const { vm } = props;
    this.deploy = new Resource(this, "Deploy", {
      triggers: { toplevel: props.toplevel, instance_id: vm.instance.instanceId },
      dependsOn: [vm.instance, vm.firewall],
      provisioners: [
        {
          type: "local-exec",
          command: SCRIPTS.deploy,
          interpreter: BASH,
          workingDir: PROJECT_ROOT_FROM_STACK,
          environment: {
            DEPLOY_FLAKE: literal(props.flake),
            DEPLOY_NODE: props.node,
            DEPLOY_PACKAGE: props.package ?? "deploy-rs",
            DEPLOY_EXPECTED_SYSTEM: props.toplevel,
            DEPLOY_HOST: vm.sshAddress,
            DEPLOY_CONNECT: vm.connect,
            DEPLOY_SSH_USER: props.sshUser,
            DEPLOY_SSH_PORT: "22",
            DEPLOY_PROJECT: props.project,
            DEPLOY_ZONE: props.zone,
            DEPLOY_INSTANCE: vm.instance.name,
            DEPLOY_INSTANCE_ID: vm.instance.instanceId,
            DEPLOY_KNOWN_HOSTS: literal(props.knownHostsFile),
            DEPLOY_WAIT_SECONDS: String(props.sshWaitSeconds ?? 300),
            DEPLOY_CONFIRM_TIMEOUT: String(props.confirmTimeoutSeconds ?? 30),
            DEPLOY_ACTIVATION_TIMEOUT: String(props.activationTimeoutSeconds ?? 240),
          },
        },
      ],
    });
  }
}
