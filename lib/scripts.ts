/** What every local-exec step shares: its interpreter and the escaping of literal values. */

/** The interpreter every provisioner uses: `bash <script>`. */
export const BASH = ["bash"];

/**
 * Terraform reads "${" and "%{" in any string as template syntax, even in
 * cdk.tf.json. Values from settings are literal, so escape them.
 */
export function literal(value: string): string {
  return value.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}
