/** Which Terraform the commands run: TERRAFORM_BINARY_NAME (OpenTofu, as cdktf reads it), else terraform. */
export function terraformBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.TERRAFORM_BINARY_NAME || "terraform";
}

/** What to say when terraformBinary(env) is not on PATH (spawn's ENOENT). */
export function terraformMissing(env: NodeJS.ProcessEnv = process.env): string {
  const binary = terraformBinary(env);
  return binary !== "terraform"
    ? `TERRAFORM_BINARY_NAME is ${JSON.stringify(binary)}, which is not on PATH; install it, or unset TERRAFORM_BINARY_NAME to run terraform`
    : "terraform is not on PATH; install Terraform 1.5+, or OpenTofu and set TERRAFORM_BINARY_NAME=tofu";
}
