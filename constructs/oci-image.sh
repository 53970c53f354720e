# OciImage push step: `bash constructs/oci-image.sh` from the project root (local-exec).
# Every value arrives through the environment (PushOciEnv in oci-image.ts):
#   OCI_FLAKE OCI_PACKAGE OCI_PLANNED_STORE_PATH OCI_REPOSITORY OCI_TAG
#   OCI_AUTH (gcloud: a short-lived token; none) OCI_TLS_VERIFY (true|false)
# Needs nix, skopeo, umoci and node (which cdktf itself runs on).
set -euo pipefail
log() { echo "oci-push[$OCI_PACKAGE]: $*" >&2; }
# Terraform runs steps in parallel, and concurrent evaluations sharing Nix's
# eval cache (one SQLite file per flake) fail with "database is busy" or an
# attribute "unexpectedly missing" (Nix 2.8, found by the rehearsal).
nix_cmd() { nix --extra-experimental-features 'nix-command flakes' --option eval-cache false "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/oci-push.XXXXXX")
trap 'rm -rf "$work"' EXIT
installable="$OCI_FLAKE#$OCI_PACKAGE"
reference="$OCI_REPOSITORY:$OCI_TAG"

current=$(nix_cmd eval --raw "$installable.outPath")
if [ "$current" != "$OCI_PLANNED_STORE_PATH" ]; then
  log "the flake changed after synth; run synth/diff again (planned $OCI_PLANNED_STORE_PATH, flake now gives $current)"
  exit 1
fi
skopeo_opts=(--tls-verify="$OCI_TLS_VERIFY")
# A short-lived token in a private file: never on a command line, never in state.
# Written again before the push: the conversion of a large image can outlast it.
write_auth() {
  [ "$OCI_AUTH" = gcloud ] || return 0
  local token
  token=$(gcloud auth print-access-token)
  (umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}' "${OCI_REPOSITORY%%/*}" "$(printf 'oauth2accesstoken:%s' "$token" | base64 -w0)" > "$work/auth.json")
}
write_auth
if [ "$OCI_AUTH" = gcloud ]; then skopeo_opts+=(--authfile "$work/auth.json"); fi

# Tags carry the store hash and the repository's tags are immutable: a tag
# that exists already holds exactly this content, and nothing is built.
if absent=$(skopeo inspect --raw "${skopeo_opts[@]}" "docker://$reference" 2>&1 > /dev/null); then
  log "$reference is already in the registry; nothing built or pushed"
else
  # Any failure counts as absent; one that is not (no access, say) fails the push, later.
  log "$reference is not in the registry (skopeo: ${absent##*$'\n'})"
  log "building $installable"
  nix_cmd build --out-link "$work/image" "$installable"
  archive="$work/image"
  if [ "$(head -c 2 "$archive" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
    # Some skopeo releases (Debian's 1.9) cannot read a gzipped docker-archive.
    log "decompressing the gzipped archive (use dockerTools' compressor = \"none\" to skip this)"
    gzip -dc "$archive" > "$work/image.tar"
    archive="$work/image.tar"
  fi
  # A docker-archive has no manifest annotations: convert to an OCI layout and
  # copy the org.opencontainers.image.* labels into the manifest's annotations.
  layout="$work/layout:image"
  skopeo copy --quiet "docker-archive:$archive" "oci:$layout"
  # The commit goes on at push time, never into the build: a store path that
  # depended on it would change with every commit, lock file included.
  revision=$(nix_cmd flake metadata --json "$OCI_FLAKE" | node -e '
    let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
      const meta = JSON.parse(text);
      process.stdout.write(meta.revision ?? meta.dirtyRevision ?? "dirty");
    });')
  log "revision $revision"
  umoci config --no-history --image "$layout" --config.label "org.opencontainers.image.revision=$revision"
  mapfile -d '' annotations < <(skopeo inspect --config "oci:$layout" | node -e '
    let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
      const labels = JSON.parse(text).config?.Labels ?? {};
      for (const [key, value] of Object.entries(labels).sort()) {
        if (key.startsWith("org.opencontainers.image.")) process.stdout.write(`--manifest.annotation\0${key}=${value}\0`);
      }
    });')
  if [ "${#annotations[@]}" -gt 0 ]; then
    umoci config --no-history --image "$layout" "${annotations[@]}"
  fi
  log "pushing $reference"
  write_auth
  skopeo copy --quiet "${skopeo_opts[@]/--tls-verify/--dest-tls-verify}" "oci:$layout" "docker://$reference"
  log "pushed $reference"
fi
digest=$(skopeo inspect --format '{{.Digest}}' "${skopeo_opts[@]}" "docker://$reference")
log "digest $OCI_REPOSITORY@$digest"
