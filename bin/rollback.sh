# npm run rollback -- <host>: switch a host back to its previous system generation.
# Values arrive through the environment (see constructs/deploy-rs-ssh-config.sh); the remote commands are constant.
set -euo pipefail
log() { echo "rollback[$DEPLOY_HOST]: $*" >&2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/rollback.XXXXXX")
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../constructs/deploy-rs-ssh-config.sh"
# No boot-mode check, unlike the deploy step: the firmware comes with the VM's
# disk, and every generation on it was its image's or one the deploy step
# admitted for that firmware, whatever the settings say now.
# ControlPath=none: each of these few sessions has its own connection (and IAP
# tunnel). A shared master sends gcloud's stderr, the reason a tunnel fails
# (not logged in, no IAP permission), to /dev/null; ssh alone says only
# "Connection closed by remote host".
remote() { ssh -F "$work/ssh_config" -o ControlPath=none "$DEPLOY_HOST" "$1"; }

log "system generations before:"
remote "sudo nix-env --profile /nix/var/nix/profiles/system --list-generations" >&2
before=$(remote "readlink -f /run/current-system")
log "switching from $before to the previous generation"
remote "sudo nix-env --profile /nix/var/nix/profiles/system --rollback && sudo /nix/var/nix/profiles/system/bin/switch-to-configuration switch"
after=$(remote "readlink -f /run/current-system")
if [ "$after" = "$before" ]; then
  log "the host still runs $before; nothing was rolled back"
  exit 1
fi
log "now active: $after"
log "Terraform still records the newer system: run cdktf deploy after reverting the flake (git revert) to make this permanent"
