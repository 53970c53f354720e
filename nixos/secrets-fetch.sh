#!/usr/bin/env bash
# Fetches the latest version of Secret Manager secrets into files, with the
# VM's own service account (a metadata-server token, no gcloud).
# nixos/secrets.nix runs it as infra-secrets.service; tests run it against
# doubles of both servers.
#
# usage: secrets-fetch.sh NAME:OWNER:MODE...
#   writes $SECRETS_DIR/NAME (default /run/secrets), owned by OWNER and OWNER's
#   login group, with MODE; replaced atomically, byte for byte, so a failed
#   fetch keeps the last copy. Files of names not listed are removed.
# Environment (tests point these at doubles):
#   METADATA_URL        default http://metadata.google.internal/computeMetadata/v1
#   SECRET_MANAGER_URL  default https://secretmanager.googleapis.com/v1
#   SECRETS_REQUEST_SECONDS  bound on one request (default 10)
#   SECRETS_RETRY_SECONDS    how long unreachable servers are retried (default 120)
#   SECRETS_DENIED_RETRY_SECONDS  how long a denied secret is retried (default
#     120): a grant applied minutes ago may not be in effect yet
# A secret still denied after that, a missing or a disabled one: one line names
# it and the command that fixes it, and the exit status is 1.
set -euo pipefail

dir=${SECRETS_DIR:-/run/secrets}
metadata=${METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}
api=${SECRET_MANAGER_URL:-https://secretmanager.googleapis.com/v1}
request_seconds=${SECRETS_REQUEST_SECONDS:-10}
give_up_at=$((SECONDS + ${SECRETS_RETRY_SECONDS:-120}))
denied_until=$((SECONDS + ${SECRETS_DENIED_RETRY_SECONDS:-120}))

umask 077
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# fetch WHAT URL OUT DENIED_UNTIL [CURL ARGS...]: prints the HTTP status, the
# body in OUT. No answer, 429 and 5xx are retried with backoff (the network may
# still be coming up) until SECRETS_RETRY_SECONDS have passed; 403 until
# DENIED_UNTIL (IAM takes up to minutes to apply a new grant).
fetch() {
  local what=$1 url=$2 out=$3 denied=$4 delay=1 status until why
  shift 4
  while :; do
    status=$(curl --silent --max-time "$request_seconds" --output "$out" --write-out '%{http_code}' "$@" "$url") || status=000
    case $status in
      000 | 429 | 5??) until=$give_up_at why="no answer yet" ;;
      403) until=$denied why="denied, perhaps by a grant not yet in effect" ;;
      *) echo "$status" && return ;;
    esac
    if ((SECONDS + delay > until)); then echo "$status" && return; fi
    echo "infra-secrets: $what: $why (HTTP $status), retrying in ${delay}s" >&2
    sleep "$delay"
    delay=$((delay < 16 ? delay * 2 : 30))
  done
}

# Google's own words for a failed call, if the body has them.
reason() { jq -r '.error.message // empty' <"$1" 2>/dev/null | head -c 300 || true; }

status=$(fetch "metadata server" "$metadata/instance/service-accounts/default/token" "$work/token" 0 -H "Metadata-Flavor: Google")
if [ "$status" != 200 ]; then
  echo "infra-secrets: no token from the metadata server (HTTP $status); the VM needs its service account (hosts.<id> in infra.json, then apply)" >&2
  exit 1
fi
# The token goes to curl in a file, never in its arguments (other users see those in ps).
jq -er '"Authorization: Bearer " + .access_token' <"$work/token" >"$work/auth"
status=$(fetch "metadata server" "$metadata/project/project-id" "$work/project" 0 -H "Metadata-Flavor: Google")
[ "$status" = 200 ] || {
  echo "infra-secrets: no project id from the metadata server (HTTP $status)" >&2
  exit 1
}
project=$(<"$work/project")

# A secret no longer listed goes (the unit keeps the directory across restarts).
listed=" ${*%%:*} "
for file in "$dir"/*; do
  [ -f "$file" ] || continue
  name=${file##*/}
  [[ $listed == *" $name "* ]] || { rm -f "$file" && echo "infra-secrets: $name: no longer listed, removed" >&2; }
done

failed=0
for entry in "$@"; do
  IFS=: read -r name owner mode <<<"$entry"
  status=$(fetch "$name" "$api/projects/$project/secrets/$name/versions/latest:access" "$work/body" "$denied_until" -H "@$work/auth")
  # The newest version disabled or destroyed (400, naming it): the latest enabled
  # one is an older number (the host may access versions, not list them).
  tries=20
  while [ "$status" = 400 ] && [[ $(reason "$work/body") =~ /versions/([0-9]+)\]\ is\ in\ (DISABLED|DESTROYED)\ state ]] &&
    ((BASH_REMATCH[1] > 1 && tries-- > 0)); do
    status=$(fetch "$name" "$api/projects/$project/secrets/$name/versions/$((BASH_REMATCH[1] - 1)):access" "$work/body" "$denied_until" -H "@$work/auth")
  done
  if [ "$status" = 200 ] && jq -er '.payload.data' <"$work/body" | base64 -d >"$work/value"; then
    chown "$owner:" "$work/value"
    chmod "$mode" "$work/value"
    mv -f "$work/value" "$dir/$name"
    echo "infra-secrets: $name: written to $dir/$name" >&2
    continue
  fi
  case $status in
    200) fix="the answer held no payload; systemctl restart infra-secrets" ;;
    403) fix="this host may not read it, or it does not exist: list it under hosts.<id>.secrets in infra.json and apply (a new grant can take minutes to take effect), then systemctl restart infra-secrets" ;;
    404) fix="it has no version: gcloud secrets versions add $name --project $project --data-file=FILE, then systemctl restart infra-secrets" ;;
    400) fix="no version of it is enabled: gcloud secrets versions add $name --project $project --data-file=FILE (or enable that version), then systemctl restart infra-secrets" ;;
    000) fix="Secret Manager did not answer in time; systemctl restart infra-secrets once it is reachable" ;;
    *) fix="unexpected answer; systemctl restart infra-secrets once the cause is fixed" ;;
  esac
  google=$(reason "$work/body")
  echo "infra-secrets: secret $name not fetched (HTTP $status): $fix${google:+ (Google: $google)}" >&2
  failed=1
done
exit "$failed"
