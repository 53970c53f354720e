/** The main stack: image chain, hosts and their deploys, OCI images. */
import { GoogleProvider } from "@cdktf/provider-google/lib/provider/index.js";
import { GcsBackend, LocalBackend, TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import type { Resolved } from "../lib/nix.js";
import { PROJECT_ROOT_FROM_STACK } from "../lib/paths.js";
import type { Settings } from "../lib/settings.js";

export interface InfraStackProps {
  readonly settings: Settings;
  /** Planned store paths, from `nix eval` or the lock file. */
  readonly resolved: Resolved;
}

export class InfraStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: InfraStackProps) {
    super(scope, id);
    const { settings, resolved } = props;
    useBackend(this, id, settings);
    const provider = new GoogleProvider(this, "google", { project: settings.project, region: settings.region, zone: settings.zone });
    // Providers snake-case map keys ("managed-by" would become "managed_by"); an override is written as is.
    provider.addOverride("default_labels", { "managed-by": "cdktf", ...settings.labels });
    for (const [imageId, image] of Object.entries(resolved.images)) {
      new TerraformOutput(this, `image-${imageId}-store-path`, { value: image.storePath });
    }
    for (const [hostId, host] of Object.entries(resolved.hosts)) {
      new TerraformOutput(this, `host-${hostId}-toplevel`, { value: host.toplevel });
    }
  }
}

/** Local state beside the project (not in cdktf.out, which synth rewrites), or GCS under <prefix>/<stack>. */
export function useBackend(stack: TerraformStack, stackId: string, settings: Settings): void {
  if (settings.backend.type === "gcs") {
    new GcsBackend(stack, { bucket: settings.backend.bucket, prefix: `${settings.backend.prefix}/${stackId}` });
  } else {
    new LocalBackend(stack, { path: `${PROJECT_ROOT_FROM_STACK}/terraform.${stackId}.tfstate` });
  }
}
