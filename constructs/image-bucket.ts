import { StorageBucket } from "@cdktf/provider-google/lib/storage-bucket/index.js";
import { Construct } from "constructs";

export interface ImageBucketProps {
  /** Bucket name (imageBucket, checked by lib/settings.ts). */
  readonly name: string;
  /** Bucket location, e.g. "EUROPE-WEST1" or "EU". */
  readonly location: string;
  /**
   * Create the bucket here. With false, `name` must be an existing bucket;
   * nothing about it is managed.
   * @default true
   */
  readonly create?: boolean;
  /** @default {} */
  readonly labels?: Record<string, string>;
  /**
   * Objects under `nixos/` are deleted this many days after upload. An image
   * no longer needs its object once imported; an upload step that needs one
   * again uploads it again. Only applies to a bucket created here.
   * @default 30
   */
  readonly objectRetentionDays?: number;
}

/**
 * The private bucket the raw image tarballs are uploaded to. A created bucket
 * is deleted with everything in it: keep nothing else there.
 */
export class ImageBucket extends Construct {
  /** The bucket's name, as written in the settings. */
  public readonly bucketName: string;
  /** The managed bucket, when created here: what uploads must wait for. */
  public readonly dependables: StorageBucket[];

  constructor(scope: Construct, id: string, props: ImageBucketProps) {
    super(scope, id);
    const retention = props.objectRetentionDays ?? 30;
    if (!Number.isInteger(retention) || retention < 1) {
      throw new Error(`ImageBucket: objectRetentionDays must be a positive whole number of days (got ${retention})`);
    }
    this.bucketName = props.name;
    if (props.create === false) {
      this.dependables = [];
      return;
    }
    const bucket = new StorageBucket(this, "Bucket", {
      name: props.name,
      location: props.location.toUpperCase(),
      uniformBucketLevelAccess: true,
      publicAccessPrevention: "enforced",
      labels: props.labels,
      // The uploads are not in the state (the upload step writes them), so
      // Terraform could never empty the bucket itself: without this, Google
      // refuses to delete it while any upload of the last 30 days remains,
      // and `cdktf destroy` (or a new imageBucket name) fails at the bucket.
      // Everything in it is a copy the upload steps make again on demand.
      forceDestroy: true,
      lifecycleRule: [{ action: { type: "Delete" }, condition: { age: retention, matchesPrefix: ["nixos/"] } }],
    });
    this.dependables = [bucket];
  }
}
