/**
 * The contract of every local-exec step: the script it runs and the
 * environment that script reads. Constructs and bin/rollback.ts build their
 * environments from these types, so a renamed or dropped variable is a type
 * error, not a failure at apply time.
 *
 * Each script lives next to the construct that runs it; values reach it only
 * through the environment, never spliced into the command.
 */
import { Token } from "cdktf";
import { PROJECT_ROOT_FROM_STACK } from "./paths.js";
import { BASH, literal } from "./scripts.js";

/** Scripts, relative to the project root (every step's working_dir). */
export const STEP_SCRIPTS = {
  buildImage: "constructs/nix-image.sh",
  dropImageRoot: "constructs/nix-image-destroy.sh",
  uploadImage: "constructs/gce-image.sh",
  pruneGcRoots: "constructs/gc-roots.sh",
  deploy: "constructs/deploy-rs.sh",
  pushOci: "constructs/oci-image.sh",
  rollback: "bin/rollback.sh",
} as const;

/** NixImage build step (constructs/nix-image.sh). */
export interface BuildImageEnv {
  /** Flake reference as the user wrote it. */
  readonly NIX_FLAKE: string;
  /** `nixosConfigurations.<name>.config.system.build.googleComputeImage` */
  readonly NIX_ATTRIBUTE: string;
  readonly PLANNED_STORE_PATH: string;
  /** The image file, relative to the store path. */
  readonly IMAGE_FILE: string;
  /** GC root symlink, relative to the project root. */
  readonly GC_ROOT: string;
}

/** NixImage destroy step (constructs/nix-image-destroy.sh), run by `terraform destroy` only. */
export interface DropImageRootEnv {
  /** The build's GC root, read from its own triggers (`self`): a destroy step may refer to nothing else. */
  readonly GC_ROOT: string;
}

/** GceImage upload step (constructs/gce-image.sh): builds again only when the file is missing. */
export interface UploadImageEnv extends BuildImageEnv {
  readonly UPLOAD_BUCKET: string;
  readonly UPLOAD_OBJECT: string;
}

/** GcRoots prune step (constructs/gc-roots.sh). */
export interface PruneGcRootsEnv {
  readonly GC_ROOT_DIR: string;
  /** Space-separated names of the roots to keep. */
  readonly GC_ROOTS_KEEP: string;
}

/** How deploys and rollbacks reach a host (constructs/deploy-rs-ssh-config.sh). */
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

/** DeployRs step (constructs/deploy-rs.sh). */
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

/** OciImage push step (constructs/oci-image.sh). */
export interface PushOciEnv {
  readonly OCI_FLAKE: string;
  readonly OCI_PACKAGE: string;
  readonly OCI_PLANNED_STORE_PATH: string;
  readonly OCI_REPOSITORY: string;
  readonly OCI_TAG: string;
  /** "gcloud": a short-lived token; "none": no credentials (tests). */
  readonly OCI_AUTH: "gcloud" | "none";
  readonly OCI_TLS_VERIFY: "true" | "false";
}

/**
 * A local-exec provisioner running `bash <script>` from the project root.
 * Every value that is not a Terraform reference is escaped against template
 * syntax, so settings arrive verbatim.
 */
export function localExec<E extends object>(script: string, environment: E) {
  return {
    type: "local-exec" as const,
    command: script,
    interpreter: BASH,
    workingDir: PROJECT_ROOT_FROM_STACK,
    environment: Object.fromEntries(
      Object.entries(environment).map(([key, value]) => [key, Token.isUnresolved(value) ? value : literal(String(value))]),
    ),
  };
}
