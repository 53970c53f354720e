# GcRoots step: `bash constructs/gc-roots.sh` from the project root (local-exec).
# Removes the GC roots of images that are no longer planned, so Nix may
# collect them, and their upload locks (constructs/gce-image-lock.sh). Terraform
# runs no destroy provisioner for replaced (create_before_destroy) or removed
# resources, so this runs whenever the set of planned roots changes.
# Environment (PruneGcRootsEnv in gc-roots.ts): GC_ROOT_DIR GC_ROOTS_KEEP
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gce-image-lock.sh"
read -r -a keep <<< "$GC_ROOTS_KEEP"
drop_upload_locks "$GC_ROOT_DIR" "${keep[@]}"
[ -d "$GC_ROOT_DIR" ] || exit 0
for root in "$GC_ROOT_DIR"/*; do
  # Only symlinks named by a store hash are ours; anything else is left alone.
  [ -L "$root" ] || continue
  name=$(basename "$root")
  [[ $name =~ ^[0-9a-df-np-sv-z]{32}$ ]] || continue
  for wanted in "${keep[@]}"; do
    [ "$name" = "$wanted" ] && continue 2
  done
  rm -f "$root"
  echo "gc-roots: dropped $root (no planned image uses it)" >&2
done
