# Sourced by constructs/deploy-rs.sh after deploy-rs-ssh-config.sh: defines wait_for_ssh, which waits
# up to DEPLOY_WAIT_SECONDS until SSH answers on the host.
#   direct: the SSH banner on DEPLOY_HOST:DEPLOY_SSH_PORT;
#   iap:    an answer to authentication through the same tunnel deploys use
#           (auth method "none" is always refused, so nothing logs in).
# What the host (or gcloud) last answered is kept in ssh_answer: a wait that
# times out says why (an IAP permission, gcloud missing, a refused port), not
# only that it did.

ssh_answers() {
  if [ "$DEPLOY_CONNECT" = iap ]; then
    # ControlPath=none: not the shared connection, whose master sends gcloud's
    # stderr (the reason a tunnel fails) to /dev/null, and this logs in to nothing.
    ssh_answer=$(ssh -F "$work/ssh_config" -o ControlPath=none -o PreferredAuthentications=none -o ConnectTimeout=15 "$DEPLOY_HOST" true 2>&1) && return 0
    [[ $ssh_answer == *"Permission denied"* ]]
  else
    ssh_answer=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; IFS= read -r -t 8 banner <&3 || { echo "no banner within 8s"; exit 1; }
      [[ $banner == SSH-* ]] || { echo "not an SSH banner: ${banner:0:40}"; exit 1; }' probe "$DEPLOY_HOST" "$DEPLOY_SSH_PORT" 2>&1)
  fi
}

# The last answer on one line, bounded: gcloud's reason (an IAP error) comes
# before ssh's own "Connection closed", so every line is kept.
last_ssh_answer() {
  local text
  text=$(printf '%s\n' "${ssh_answer:-}" | tr -d '\r' | grep -v '^[[:space:]]*$' | paste -s -d '|' | sed 's/|/ | /g' | cut -c 1-300) || true
  echo "${text:-no answer}"
}

wait_for_ssh() {
  local label="deploy-rs[$DEPLOY_NODE]"
  echo "$label: waiting up to ${DEPLOY_WAIT_SECONDS}s for SSH on $DEPLOY_HOST:$DEPLOY_SSH_PORT ($DEPLOY_CONNECT)" >&2
  local started=$SECONDS
  local deadline=$((SECONDS + DEPLOY_WAIT_SECONDS)) every=${SSH_WAIT_REPORT_SECONDS:-30}
  local next_report=$((SECONDS + every))
  ssh_answer=""
  until ssh_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$label: SSH did not answer on $DEPLOY_HOST:$DEPLOY_SSH_PORT within ${DEPLOY_WAIT_SECONDS}s (deploy.sshWaitSeconds; last answer: $(last_ssh_answer)); check that the VM booted and the firewall admits this machine" >&2
      return 1
    fi
    # A first boot takes a minute or two: say every 30 s (SSH_WAIT_REPORT_SECONDS) that the wait goes on, and what the host answers.
    if [ "$SECONDS" -ge "$next_report" ]; then
      echo "$label: still waiting for SSH ($((SECONDS - started))s of ${DEPLOY_WAIT_SECONDS}s; last answer: $(last_ssh_answer))" >&2
      next_report=$((SECONDS + every))
    fi
    sleep 2
  done
  echo "$label: SSH answers" >&2
}
