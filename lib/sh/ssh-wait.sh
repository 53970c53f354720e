# Sourced by constructs/deploy-rs.sh after ssh-config.sh: defines wait_for_ssh, which waits
# up to DEPLOY_WAIT_SECONDS until SSH answers on the host.
#   direct: the SSH banner on DEPLOY_HOST:DEPLOY_SSH_PORT;
#   iap:    an answer to authentication through the same tunnel deploys use
#           (auth method "none" is always refused, so nothing logs in).

ssh_answers() {
  if [ "$DEPLOY_CONNECT" = iap ]; then
    local answer
    answer=$(ssh -F "$work/ssh_config" -o PreferredAuthentications=none -o ConnectTimeout=15 "$DEPLOY_HOST" true 2>&1) && return 0
    [[ $answer == *"Permission denied"* ]]
  else
    timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 8 banner <&3 && [[ $banner == SSH-* ]]' \
      probe "$DEPLOY_HOST" "$DEPLOY_SSH_PORT" 2>/dev/null
  fi
}

wait_for_ssh() {
  local label="deploy-rs[$DEPLOY_NODE]"
  echo "$label: waiting up to ${DEPLOY_WAIT_SECONDS}s for SSH on $DEPLOY_HOST:$DEPLOY_SSH_PORT ($DEPLOY_CONNECT)" >&2
  local deadline=$((SECONDS + DEPLOY_WAIT_SECONDS))
  until ssh_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$label: SSH did not answer on $DEPLOY_HOST:$DEPLOY_SSH_PORT within ${DEPLOY_WAIT_SECONDS}s (deploy.sshWaitSeconds); check that the VM booted and the firewall admits this machine" >&2
      return 1
    fi
    sleep 2
  done
  echo "$label: SSH answers" >&2
}
