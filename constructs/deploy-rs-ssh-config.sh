# Sourced by constructs/deploy-rs.sh and bin/rollback.sh: writes "$work/ssh_config" for one host,
# and defines ssh_close, which the caller runs before removing $work (rollback.sh shares no connection).
# Inputs (environment): DEPLOY_HOST DEPLOY_SSH_USER DEPLOY_SSH_PORT DEPLOY_CONNECT
#   DEPLOY_PROJECT DEPLOY_ZONE DEPLOY_INSTANCE DEPLOY_INSTANCE_ID DEPLOY_KNOWN_HOSTS
# ssh_config has no escaping, so refuse what it cannot carry instead of misreading it.
for var in DEPLOY_HOST DEPLOY_SSH_USER DEPLOY_SSH_PORT DEPLOY_CONNECT DEPLOY_PROJECT DEPLOY_ZONE DEPLOY_INSTANCE DEPLOY_INSTANCE_ID; do
  case "${!var:-}" in
    "" | *[!A-Za-z0-9._:-]*) echo "ssh-config: $var=\"${!var:-}\" is empty or has characters ssh_config cannot carry" >&2; exit 2 ;;
  esac
done
case "$DEPLOY_KNOWN_HOSTS" in
  "" | *'"'* | *$'\n'*) echo "ssh-config: DEPLOY_KNOWN_HOSTS=\"$DEPLOY_KNOWN_HOSTS\" must be a path without double quotes or newlines" >&2; exit 2 ;;
esac
mkdir -p "$(dirname "$DEPLOY_KNOWN_HOSTS")"
touch "$DEPLOY_KNOWN_HOSTS"
known_hosts="$(cd "$(dirname "$DEPLOY_KNOWN_HOSTS")" && pwd)/$(basename "$DEPLOY_KNOWN_HOSTS")"
{
  echo "Host $DEPLOY_HOST"
  echo "  User $DEPLOY_SSH_USER"
  echo "  Port $DEPLOY_SSH_PORT"
  # Host keys are recorded on first contact and enforced afterwards, per
  # stack. The alias carries the instance id, so a re-created VM (new id, new
  # host key) gets a fresh entry instead of a mismatch.
  echo "  UserKnownHostsFile \"$known_hosts\""
  echo "  HostKeyAlias $DEPLOY_INSTANCE-$DEPLOY_INSTANCE_ID"
  echo "  StrictHostKeyChecking accept-new"
  echo "  BatchMode yes"
  echo "  ConnectTimeout 15"
  echo "  ServerAliveInterval 15"
  # One connection per deploy, so through IAP one tunnel: deploy-rs opens
  # several sessions (copy, activate, confirm...), and each would otherwise
  # start its own gcloud tunnel, seconds each, the confirm's inside
  # deploy.confirmTimeoutSeconds. The socket lives in $work and goes with it;
  # ssh_close ends the master. Socket paths are limited to 104 bytes (macOS;
  # 108 on Linux), and ssh first binds the path plus 17 characters.
  if [ $((${#work} + 4 + 17)) -lt 104 ]; then
    echo "  ControlMaster auto"
    echo "  ControlPath \"$work/mux\""
    echo "  ControlPersist 120"
  fi
  if [ "$DEPLOY_CONNECT" = iap ]; then
    echo "  ProxyCommand gcloud compute start-iap-tunnel $DEPLOY_INSTANCE %p --listen-on-stdin --project=$DEPLOY_PROJECT --zone=$DEPLOY_ZONE --verbosity=warning"
  fi
} > "$work/ssh_config"

# Ends the shared connection (its IAP tunnel with it), if one was opened.
ssh_close() {
  [ -S "$work/mux" ] || return 0
  ssh -F "$work/ssh_config" -O exit "$DEPLOY_HOST" 2>/dev/null || true
  # The master acknowledges, then exits: wait (at most 5 s) until it is gone.
  local tries=50
  while [ -S "$work/mux" ] && ((tries-- > 0)); do sleep 0.1; done
}
