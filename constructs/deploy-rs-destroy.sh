# DeployRs destroy step: `bash constructs/deploy-rs-destroy.sh` from the
# project root (local-exec, when = destroy).
# Terraform destroys a deploy step it replaces before anything the step
# depends on is created, so before the image build and the deploy check the
# flake. Had they refused after that (the flake changed after synth), the
# step would be gone, and the next apply would deploy the host again. This
# check refuses first, and the step stays. Terraform skips it for a tainted
# step and for a host removed from the configuration; `terraform destroy`
# runs it too (`cdktf destroy` synthesizes first, so it passes).
# Environment (DestroyDeployEnv in deploy-rs.ts):
#   DEPLOY_FLAKE DEPLOY_NODE DEPLOY_CONFIGURATION DEPLOY_EXPECTED_SYSTEM
#   DEPLOY_IMAGE_ATTRIBUTE DEPLOY_EXPECTED_IMAGE
set -euo pipefail
# No eval cache: concurrent evaluations sharing it fail (see deploy-rs.sh).
nix_cmd() { nix --extra-experimental-features 'nix-command flakes' --option eval-cache false "$@"; }

check_planned() {
  local installable="$DEPLOY_FLAKE#$1" planned=$2 current
  echo "deploy-rs[$DEPLOY_NODE]: checking $installable before the step is replaced" >&2
  current=$(nix_cmd eval --raw "$installable.outPath")
  if [ "$current" != "$planned" ]; then
    echo "deploy-rs[$DEPLOY_NODE]: the flake changed after synth; run synth/diff again (planned $planned, flake now gives $current); the deploy step and its host are left as they were" >&2
    exit 1
  fi
}
check_planned "$DEPLOY_IMAGE_ATTRIBUTE" "$DEPLOY_EXPECTED_IMAGE"
check_planned "nixosConfigurations.$DEPLOY_CONFIGURATION.config.system.build.toplevel" "$DEPLOY_EXPECTED_SYSTEM"
