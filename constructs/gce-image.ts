import { ComputeImage } from "@cdktf/provider-google/lib/compute-image/index.js";
import { ComputeImageIamMember } from "@cdktf/provider-google/lib/compute-image-iam-member/index.js";
import { StorageBucketObject } from "@cdktf/provider-google/lib/storage-bucket-object/index.js";
import { Annotations } from "cdktf";
import { Construct } from "constructs";
import { GCE_NAME, GCE_NAME_RULE, imageName, labelValue } from "../lib/gce.js";
import type { NixImage } from "./nix-image.js";

export interface GceImageProps {
  /** The build step whose output is uploaded. */
  readonly build: NixImage;
  /** Bucket the tarball is uploaded to. */
  readonly bucket: string;
  /** Image family; image names are `<family>-<store hash>`. */
  readonly family: string;
  /**
   * Grant roles/compute.imageUser to allAuthenticatedUsers, as nixpkgs'
   * create-gce.sh does. Synth warns when true.
   * @default false
   */
  readonly public?: boolean;
  /** @default ["VIRTIO_SCSI_MULTIQUEUE"] */
  readonly guestOsFeatures?: string[];
  /** @default {} */
  readonly labels?: Record<string, string>;
}

/**
 * Registers a Nix-built image: the tarball as a bucket object named by its
 * store hash, and a compute image named `<family>-<hash>`. Both are created
 * before their predecessors are deleted.
 */
export class GceImage extends Construct {
  public readonly name: string;
  public readonly selfLink: string;
  public readonly image: ComputeImage;
  public readonly object: StorageBucketObject;

  constructor(scope: Construct, id: string, props: GceImageProps) {
    super(scope, id);
    if (!GCE_NAME.test(props.family)) {
      throw new Error(`GceImage: family "${props.family}" is not a valid GCE name (${GCE_NAME_RULE})`);
    }
    let name: string;
    try {
      name = imageName(props.family, props.build.storeHash);
    } catch (e) {
      throw new Error(`GceImage: ${(e as Error).message}`);
    }
    const { build } = props;

    this.object = new StorageBucketObject(this, "Object", {
      bucket: props.bucket,
      // The full store hash makes every configuration change a new object.
      name: `nixos/${build.storeHash}/${build.fileName}`,
      source: build.imageFile,
      contentType: "application/gzip",
      dependsOn: [build.build],
      lifecycle: { createBeforeDestroy: true },
    });

    this.image = new ComputeImage(this, "Image", {
      name,
      family: props.family,
      description: `NixOS ${build.nixosLabel}, ${build.storePath}`,
      rawDisk: { source: `https://storage.googleapis.com/${this.object.bucket}/${this.object.name}` },
      guestOsFeatures: (props.guestOsFeatures ?? ["VIRTIO_SCSI_MULTIQUEUE"]).map((type) => ({ type })),
      labels: {
        ...props.labels,
        "nix-store-hash": build.storeHash,
        "nixos-label": labelValue(build.nixosLabel),
      },
      lifecycle: { createBeforeDestroy: true },
    });
    this.name = this.image.name;
    this.selfLink = this.image.selfLink;

    if (props.public) {
      new ComputeImageIamMember(this, "PublicUse", {
        image: this.image.name,
        role: "roles/compute.imageUser",
        member: "allAuthenticatedUsers",
      });
      Annotations.of(this).addWarning(
        `image family "${props.family}" is public: every authenticated Google account can use it (images.*.public = true)`,
      );
    }
  }
}
