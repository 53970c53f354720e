import { ComputeImage } from "@cdktf/provider-google/lib/compute-image/index.js";
import { ComputeImageIamMember } from "@cdktf/provider-google/lib/compute-image-iam-member/index.js";
import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { Annotations } from "cdktf";
import { Construct } from "constructs";
import { imageDigest, imageName, labelValue } from "../lib/gce.js";
import { localExec } from "../lib/steps.js";
import type { ImageBucket } from "./image-bucket.js";
import type { BuildImageEnv, NixImage } from "./nix-image.js";

export const UPLOAD_IMAGE_SCRIPT = "constructs/gce-image.sh";

/** GceImage upload step: builds again only when the file is missing. */
export interface UploadImageEnv extends BuildImageEnv {
  readonly UPLOAD_BUCKET: string;
  readonly UPLOAD_OBJECT: string;
}

export interface GceImageProps {
  /** The build step whose output is uploaded. */
  readonly build: NixImage;
  /** Bucket the tarball is uploaded to. */
  readonly bucket: ImageBucket;
  /** Image family; image names are `<family>-<digest>`. Checked by lib/settings.ts (images.<id>.family), not here. */
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
  /**
   * Where Google stores the image (storage_locations): a region or a
   * multi-region. Unset, Google picks the multi-region nearest the bucket,
   * which a gcp.resourceLocations policy allowing only the region refuses.
   */
  readonly storageLocation: string;
}

/**
 * Registers a Nix-built image: an upload step that puts the tarball into the
 * bucket under its store hash, and a compute image named
 * `<family>-<digest>`, where the digest covers everything that makes Google
 * create a new image. The image is created before its predecessor is deleted.
 */
export class GceImage extends Construct {
  /** The image's name: a reference to the resource's (outputs wait for the image). */
  public readonly name: string;
  /** The same name, known at synth: `<family>-<digest>`. */
  public readonly plannedName: string;
  public readonly selfLink: string;
  public readonly image: ComputeImage;
  /** The build step whose output the image is. */
  public readonly build: NixImage;
  /** The upload step (null_resource), keyed by the object and the image name. */
  public readonly upload: Resource;
  /** Object name inside the bucket: `nixos/<store hash>/<file>`. */
  public readonly objectName: string;
  /** The image name's digest (lib/gce.ts imageDigest): changes whenever Google would need a new image. */
  public readonly digest: string;

  constructor(scope: Construct, id: string, props: GceImageProps) {
    super(scope, id);
    const { build, bucket } = props;
    this.build = build;
    const guestOsFeatures = props.guestOsFeatures ?? ["VIRTIO_SCSI_MULTIQUEUE"];
    // The full store hash makes every configuration change a new object.
    this.objectName = `nixos/${build.storeHash}/${build.fileName}`;
    const sourceUrl = `https://storage.googleapis.com/${bucket.bucketName}/${this.objectName}`;
    this.digest = imageDigest(build.storePath, guestOsFeatures, sourceUrl, props.storageLocation);
    const name = imageName(props.family, this.digest);
    this.plannedName = name;

    // An upload step instead of google_storage_bucket_object: that resource
    // reads the local file at every plan and at create, and a fresh runner
    // has no file. See docs/architecture.md.
    this.upload = new Resource(this, "Upload", {
      triggers: { object: `gs://${bucket.bucketName}/${this.objectName}`, image: name },
      dependsOn: [build.build, ...bucket.dependables],
      provisioners: [
        localExec<UploadImageEnv>(UPLOAD_IMAGE_SCRIPT, {
          ...build.environment,
          UPLOAD_BUCKET: bucket.bucketName,
          UPLOAD_OBJECT: this.objectName,
        }),
      ],
    });

    this.image = new ComputeImage(this, "Image", {
      name,
      family: props.family,
      description: `NixOS ${build.nixosLabel}, ${build.storePath}`,
      rawDisk: { source: sourceUrl },
      storageLocations: [props.storageLocation],
      guestOsFeatures: guestOsFeatures.map((type) => ({ type })),
      labels: {
        ...props.labels,
        "nix-store-hash": build.storeHash,
        "nixos-label": labelValue(build.nixosLabel),
      },
      dependsOn: [this.upload],
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
