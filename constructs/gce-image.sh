# GceImage upload step: `bash constructs/gce-image.sh` from the project root
# (local-exec). Every value arrives through the environment (UploadImageEnv in
# gce-image.ts): UPLOAD_BUCKET UPLOAD_OBJECT and the build step's inputs.
#
# Idempotent and recoverable: an object that is already in the bucket is
# left alone; a file missing from this machine's store (a fresh runner) is
# built first, with the same planned-path check as the build step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/nix-image.sh"
log() { echo "gce-image: $*" >&2; }
uri="gs://${UPLOAD_BUCKET}/${UPLOAD_OBJECT}"

# Images of one configuration share their object, and Terraform runs their
# upload steps in parallel: one uploads while the others wait, then find it.
# flock releases the lock when this process ends, however it ends. Without
# flock (macOS), both may upload the same bytes: wasteful, not wrong.
source "$(dirname "${BASH_SOURCE[0]}")/gce-image-lock.sh"
if command -v flock >/dev/null; then
  take_upload_lock "$(upload_lock_dir "$(dirname "$GC_ROOT")")/upload-$(basename "$GC_ROOT")" "$uri"
fi

if answer=$(gcloud storage objects describe "$uri" --format='value(name)' 2>&1); then
  log "$uri is already in the bucket; nothing uploaded"
  exit 0
fi
case "$answer" in
  *"not found"* | *"NotFound"* | *404*) ;;
  *)
    log "cannot tell whether $uri exists: $answer"
    exit 1
    ;;
esac

file="${PLANNED_STORE_PATH}/${IMAGE_FILE}"
if [ ! -f "$file" ]; then
  log "$file is not in this machine's Nix store; building it"
  build_image
fi
log "uploading $file ($(du -Lh "$file" | cut -f1)) to $uri"
gcloud storage cp --content-type=application/gzip "$file" "$uri"
log "uploaded $uri"
