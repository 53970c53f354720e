/**
 * The first stack to deploy, with local state: the APIs the project uses and,
 * with a GCS backend, the bucket that holds every other stack's state.
 */
import { ProjectService } from "@cdktf/provider-google/lib/project-service/index.js";
import { StorageBucket } from "@cdktf/provider-google/lib/storage-bucket/index.js";
import { TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import type { Settings } from "../lib/settings.js";
import { useBackend, useGoogleProvider } from "../lib/stack-setup.js";

/** APIs the stacks and deploys call. */
export const REQUIRED_APIS = [
  "artifactregistry.googleapis.com",
  // Project services and project IAM bindings are Resource Manager calls.
  "cloudresourcemanager.googleapis.com",
  "compute.googleapis.com",
  "iam.googleapis.com",
  // Workload Identity Federation: token exchange (sts) and service account impersonation (iamcredentials).
  "iamcredentials.googleapis.com",
  "iap.googleapis.com",
  "secretmanager.googleapis.com",
  "storage.googleapis.com",
  "sts.googleapis.com",
];

export interface BootstrapStackProps {
  readonly settings: Settings;
}

export class BootstrapStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: BootstrapStackProps) {
    super(scope, id);
    const { settings } = props;
    // Always local: this stack creates the bucket remote state would live in.
    useBackend(this, id, settings, true);
    useGoogleProvider(this, settings);

    const services: Record<string, ProjectService> = {};
    for (const api of REQUIRED_APIS) {
      // Turning an API off on destroy would break whatever else uses it.
      services[api] = new ProjectService(this, api.split(".")[0], { service: api, disableOnDestroy: false });
    }

    if (settings.backend.type === "gcs") {
      const state = new StorageBucket(this, "StateBucket", {
        name: settings.backend.bucket,
        location: (settings.imageBucketLocation ?? settings.region).toUpperCase(),
        uniformBucketLevelAccess: true,
        publicAccessPrevention: "enforced",
        versioning: { enabled: true },
        // Old state versions are kept for recovery, but not forever.
        lifecycleRule: [{ action: { type: "Delete" }, condition: { numNewerVersions: 20, withState: "ARCHIVED" } }],
        // Its location is ForceNew: a later region or imageBucketLocation change would
        // plan to replace it, which prevent_destroy refuses, failing every bootstrap plan.
        lifecycle: { preventDestroy: true, ignoreChanges: ["location"] },
        // In a new project, a bucket created before its API is on fails.
        dependsOn: [services["storage.googleapis.com"]],
      });
      new TerraformOutput(this, "state-bucket", { value: state.name });
    }
  }
}
