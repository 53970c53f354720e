# DeployRs step: `bash lib/sh/deploy.sh` from the project root (local-exec).
# Every value arrives through the environment:
#   DEPLOY_FLAKE DEPLOY_NODE DEPLOY_PACKAGE DEPLOY_EXPECTED_SYSTEM DEPLOY_WAIT_SECONDS
#   DEPLOY_CONFIRM_TIMEOUT DEPLOY_ACTIVATION_TIMEOUT, and the ssh-config.sh inputs.
set -euo pipefail
log() { echo "deploy-rs[$DEPLOY_NODE]: $*" >&2; }
nix_cmd() { nix --extra-experimental-features 'nix-command flakes' "$@"; }

# deploy-rs splits --ssh-opts on spaces, so the ssh_config path must have none.
work=$(mktemp -d /tmp/deploy-rs.XXXXXX)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/ssh-config.sh"

probe() {
  if [ "$DEPLOY_CONNECT" = iap ]; then
    # Through the IAP tunnel: the SSH banner must come back.
    sleep 10 | timeout 15 gcloud compute start-iap-tunnel "$DEPLOY_INSTANCE" "$DEPLOY_SSH_PORT" --listen-on-stdin \
      --project="$DEPLOY_PROJECT" --zone="$DEPLOY_ZONE" --verbosity=none 2>/dev/null | head -c 4 | grep -q '^SSH-'
  else
    timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 8 banner <&3 && [[ $banner == SSH-* ]]' \
      probe "$DEPLOY_HOST" "$DEPLOY_SSH_PORT" 2>/dev/null
  fi
}

log "waiting up to ${DEPLOY_WAIT_SECONDS}s for SSH on $DEPLOY_HOST:$DEPLOY_SSH_PORT ($DEPLOY_CONNECT)"
deadline=$((SECONDS + DEPLOY_WAIT_SECONDS))
until probe; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "SSH did not answer on $DEPLOY_HOST:$DEPLOY_SSH_PORT within ${DEPLOY_WAIT_SECONDS}s (deploy.sshWaitSeconds); check that the VM booted and the firewall admits this machine"
    exit 1
  fi
  sleep 2
done
log "SSH answers"

log "building deploy-rs from $DEPLOY_FLAKE#$DEPLOY_PACKAGE (the flake's pin, not PATH)"
nix_cmd build --out-link "$work/deploy-rs" "$DEPLOY_FLAKE#$DEPLOY_PACKAGE"

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
