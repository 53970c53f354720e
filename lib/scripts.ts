/**
 * The bash scripts that local-exec provisioners run, as paths relative to the
 * project root (every provisioner's working_dir). Keeping them as files keeps
 * the synthesized HCL short and the scripts reviewable in git; values reach
 * them only through the provisioner's `environment`.
 */
export const SCRIPTS = {
  buildImage: "lib/sh/build-image.sh",
  dropGcRoot: "lib/sh/drop-gc-root.sh",
  deploy: "lib/sh/deploy.sh",
  pushOci: "lib/sh/push-oci.sh",
} as const;

/** The interpreter every provisioner uses: `bash <script>`. */
export const BASH = ["bash"];

/**
 * Terraform reads "${" and "%{" in any string as template syntax, even in
 * cdk.tf.json. Values from settings are literal, so escape them.
 */
export function literal(value: string): string {
  return value.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}
