import { StorageBucket } from "@cdktf/provider-google/lib/storage-bucket/index.js";
import { Construct } from "constructs";
import { BUCKET_NAME, BUCKET_NAME_RULE } from "../lib/gce.js";

export interface ImageBucketProps {
  /** Bucket name. */
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
}

/** The private bucket the raw image tarballs are uploaded to. */
export class ImageBucket extends Construct {
  /** The bucket's name; a reference to the managed bucket when it is created here. */
  public readonly name: string;

  constructor(scope: Construct, id: string, props: ImageBucketProps) {
    super(scope, id);
    if (!BUCKET_NAME.test(props.name)) {
      throw new Error(`ImageBucket: name "${props.name}" is not a valid bucket name (${BUCKET_NAME_RULE})`);
    }
    if (props.create === false) {
      this.name = props.name;
      return;
    }
    const bucket = new StorageBucket(this, "Bucket", {
      name: props.name,
      location: props.location.toUpperCase(),
      uniformBucketLevelAccess: true,
      publicAccessPrevention: "enforced",
      labels: props.labels,
      // Keeping images while objects remain is what Terraform's plan shows; never empty a bucket implicitly.
      forceDestroy: false,
    });
    this.name = bucket.name;
  }
}
