# DeployRs step: `bash constructs/deploy-rs.sh` from the project root (local-exec).
# Every value arrives through the environment (DeployEnv in deploy-rs.ts):
#   DEPLOY_FLAKE DEPLOY_NODE DEPLOY_CONFIGURATION DEPLOY_RS_INSTALLABLE
#   DEPLOY_EXPECTED_SYSTEM DEPLOY_EXPECTED_BOOT DEPLOY_INSTANCE_ADDRESS DEPLOY_WAIT_SECONDS DEPLOY_CONFIRM_TIMEOUT
#   DEPLOY_ACTIVATION_TIMEOUT, and the deploy-rs-ssh-config.sh inputs.
set -euo pipefail
log() { echo "deploy-rs[$DEPLOY_NODE]: $*" >&2; }
# Terraform runs steps in parallel, and concurrent evaluations sharing Nix's
# eval cache (one SQLite file per flake) fail with "database is busy" or an
# attribute "unexpectedly missing" (Nix 2.8, found by the rehearsal).
nix_cmd() { nix --extra-experimental-features 'nix-command flakes' --option eval-cache false "$@"; }

# deploy-rs splits --ssh-opts on spaces, so the ssh_config path must have
# none: $TMPDIR when it has none, else /tmp.
tmp=${TMPDIR:-/tmp}
[[ $tmp == *[[:space:]]* ]] && tmp=/tmp
work=$(mktemp -d "$tmp/deploy-rs.XXXXXX")
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/deploy-rs-ssh-config.sh"
trap 'ssh_close; rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/deploy-rs-ssh-wait.sh"

# Check before acting, like the build and push steps: a flake edited after
# the plan must not reach the host, not even for the seconds before a
# rollback.
system_attr="nixosConfigurations.$DEPLOY_CONFIGURATION.config.system.build.toplevel"
log "evaluating $DEPLOY_FLAKE#$system_attr"
current=$(nix_cmd eval --raw "$DEPLOY_FLAKE#$system_attr.outPath")
if [ "$current" != "$DEPLOY_EXPECTED_SYSTEM" ]; then
  log "the flake changed after synth; run synth/diff again (planned $DEPLOY_EXPECTED_SYSTEM, flake now gives $current); nothing was deployed"
  exit 1
fi

wait_for_ssh

# A kept VM boots the way the image it was created from did, whatever image
# the host names now; a system whose boot loader is for the other firmware
# would fail to activate or, worse, install half and leave a stale boot.
# `test -d` exits 0 or 1; anything else is ssh failing.
booted=efi
ssh -F "$work/ssh_config" "$DEPLOY_HOST" test -d /sys/firmware/efi || case $? in
  1) booted=bios ;;
  *) log "could not ask $DEPLOY_HOST how it booted (ssh failed, see above); nothing was deployed"; exit 1 ;;
esac
if [ "$booted" != "$DEPLOY_EXPECTED_BOOT" ]; then
  name() { if [ "$1" = efi ]; then echo UEFI; else echo BIOS; fi; }
  log "host $DEPLOY_NODE booted with $(name "$booted"), but its configuration $DEPLOY_CONFIGURATION is built for $(name "$DEPLOY_EXPECTED_BOOT") (its image's UEFI_COMPATIBLE differs from the one the VM was created from); replace the VM: terraform apply -replace='$DEPLOY_INSTANCE_ADDRESS', or set hosts.$DEPLOY_NODE.recreateOnImageChange; nothing was deployed"
  exit 1
fi

# Already active (the step was destroyed in an apply that then failed before
# it, e.g. at an upload, and the change was then dropped): the
# host runs the planned system, and activating it again would only restart
# what it runs. Only when it also boots it: the system profile may point
# elsewhere (a `switch-to-configuration test`, a rollback whose switch back
# failed), and the next boot would undo the system. deploy-rs points the
# profile at its activatable-<toplevel> wrapper, whose files link into the
# toplevel (an image's profile is the toplevel itself): the toplevel the
# profile boots is where its nixos-version file resolves to. And only when no
# unit failed (a VM booted from the planned system whose secrets fetch ran
# before its grant took effect): deploy-rs's activation reports them.
active=$(ssh -F "$work/ssh_config" "$DEPLOY_HOST" 'readlink -f /run/current-system; dirname "$(readlink -f /nix/var/nix/profiles/system/nixos-version)"; systemctl is-system-running || true') || {
  log "could not ask $DEPLOY_HOST which system it runs (ssh failed, see above); nothing was deployed"
  exit 1
}
if [ "$active" = "$DEPLOY_EXPECTED_SYSTEM"$'\n'"$DEPLOY_EXPECTED_SYSTEM"$'\n'running ]; then
  log "already active: $DEPLOY_EXPECTED_SYSTEM; nothing to deploy"
  exit 0
fi

log "building deploy-rs from $DEPLOY_RS_INSTALLABLE (the flake's pin, not PATH)"
nix_cmd build --out-link "$work/deploy-rs" "$DEPLOY_RS_INSTALLABLE"

log "deploying $DEPLOY_FLAKE#$DEPLOY_NODE; expecting $DEPLOY_EXPECTED_SYSTEM"
# --fast-connection: copy the closure from here instead of letting the host
# substitute from binary caches, which hosts without egress cannot reach.
"$work/deploy-rs/bin/deploy" \
  --skip-checks \
  --hostname "$DEPLOY_HOST" \
  --ssh-user "$DEPLOY_SSH_USER" \
  --ssh-opts "-F $work/ssh_config" \
  --magic-rollback true \
  --auto-rollback true \
  --fast-connection true \
  --confirm-timeout "$DEPLOY_CONFIRM_TIMEOUT" \
  --activation-timeout "$DEPLOY_ACTIVATION_TIMEOUT" \
  "$DEPLOY_FLAKE#$DEPLOY_NODE"

# deploy-rs can exit 0 after the target rolled itself back: ask the host.
current=$(ssh -F "$work/ssh_config" "$DEPLOY_HOST" readlink -f /run/current-system)
if [ "$current" != "$DEPLOY_EXPECTED_SYSTEM" ]; then
  log "the host runs $current, not $DEPLOY_EXPECTED_SYSTEM: the deploy was rolled back (see deploy-rs output above)"
  exit 1
fi
log "active: $current"
