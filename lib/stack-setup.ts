/** What every stack starts with: its state backend and the Google provider. */
import { GoogleProvider } from "@cdktf/provider-google/lib/provider/index.js";
import { GcsBackend, LocalBackend, type TerraformStack } from "cdktf";
import { PROJECT_ROOT_FROM_STACK } from "./paths.js";
import { DEFAULT_LABELS, type Settings } from "./settings.js";

/**
 * Local state beside the project (not in cdktf.out, which synth rewrites), or
 * GCS under <prefix>/<stack>. `local` forces local state (the bootstrap stack).
 */
export function useBackend(stack: TerraformStack, stackId: string, settings: Settings, local = false): void {
  if (settings.backend.type === "gcs" && !local) {
    new GcsBackend(stack, { bucket: settings.backend.bucket, prefix: `${settings.backend.prefix}/${stackId}` });
  } else {
    new LocalBackend(stack, { path: `${PROJECT_ROOT_FROM_STACK}/terraform.${stackId}.tfstate` });
  }
}

/** The Google provider, labelling every resource with the settings' labels. */
export function useGoogleProvider(stack: TerraformStack, settings: Settings): GoogleProvider {
  const provider = new GoogleProvider(stack, "google", { project: settings.project, region: settings.region, zone: settings.zone });
  // Providers snake-case map keys ("managed-by" would become "managed_by"); an override is written as is.
  provider.addOverride("default_labels", { ...DEFAULT_LABELS, ...settings.labels });
  return provider;
}
