import { DataGoogleArtifactRegistryDockerImage } from "@cdktf/provider-google/lib/data-google-artifact-registry-docker-image/index.js";
import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { Construct } from "constructs";
import { GCE_NAME, GCE_NAME_RULE, OCI_VERSION, storeHash } from "../lib/gce.js";
import type { ResolvedOciImage } from "../lib/nix.js";
import { localExec } from "../lib/steps.js";
import type { ImageRegistry } from "./image-registry.js";

export const PUSH_OCI_SCRIPT = "constructs/oci-image.sh";

/** OciImage push step. */
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

export interface OciImageProps {
  /** Flake reference as the user wrote it. */
  readonly flake: string;
  /** Image name inside the repository. */
  readonly name: string;
  /** Version from the settings; the tag is `<version>-<store hash>`. */
  readonly version: string;
  /** Resolved at synth; never built at synth. */
  readonly planned: ResolvedOciImage;
  readonly registry: ImageRegistry;
}

/**
 * Pushes a Nix-built image archive with skopeo. Keyed by the planned store
 * path: nothing runs, and nothing is pushed, while the path is unchanged.
 */
export class OciImage extends Construct {
  /** `<version>-<store hash>`: carries the version, unique per content. */
  public readonly tag: string;
  /** Reference by tag. */
  public readonly reference: string;
  /** Reference by digest (`…@sha256:…`), read back from the registry after the push. */
  public readonly digestReference: string;
  public readonly push: Resource;

  constructor(scope: Construct, id: string, props: OciImageProps) {
    super(scope, id);
    if (!GCE_NAME.test(props.name)) throw new Error(`OciImage: name "${props.name}" is not valid (${GCE_NAME_RULE})`);
    if (!OCI_VERSION.test(props.version)) {
      throw new Error(`OciImage: version "${props.version}" is not a valid tag prefix (letters, digits, '.', '_', '-'; at most 64)`);
    }
    this.tag = `${props.version}-${storeHash(props.planned.storePath)}`;
    const repository = `${props.registry.path}/${props.name}`;
    this.reference = `${repository}:${this.tag}`;

    this.push = new Resource(this, "Push", {
      triggers: { store_path: props.planned.storePath, reference: this.reference },
      dependsOn: [props.registry.repository],
      provisioners: [
        localExec<PushOciEnv>(PUSH_OCI_SCRIPT, {
          OCI_FLAKE: props.flake,
          OCI_PACKAGE: props.planned.package,
          OCI_PLANNED_STORE_PATH: props.planned.storePath,
          OCI_REPOSITORY: repository,
          OCI_TAG: this.tag,
          OCI_AUTH: "gcloud",
          OCI_TLS_VERIFY: "true",
        }),
      ],
    });
    const pushed = new DataGoogleArtifactRegistryDockerImage(this, "Pushed", {
      project: props.registry.repository.project,
      location: props.registry.repository.location,
      repositoryId: props.registry.repository.repositoryId,
      imageName: `${props.name}:${this.tag}`,
      dependsOn: [this.push],
    });
    this.digestReference = pushed.selfLink;
  }
}
