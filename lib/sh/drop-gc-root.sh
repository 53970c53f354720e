# NixImage destroy step: removes the GC root of a replaced or destroyed build (local-exec).
set -euo pipefail
if [ -L "$GC_ROOT" ]; then
  rm -f "$GC_ROOT"
  echo "nix-image: dropped GC root ${GC_ROOT}" >&2
fi
