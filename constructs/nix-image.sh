# NixImage build step: `bash constructs/nix-image.sh` from the project root
# (local-exec). constructs/gce-image.sh sources it to rebuild a missing file.
# Every value arrives through the environment (BuildImageEnv in nix-image.ts):
#   NIX_FLAKE NIX_ATTRIBUTE PLANNED_STORE_PATH IMAGE_FILE GC_ROOT
set -euo pipefail
# Terraform runs steps in parallel, and concurrent evaluations sharing Nix's
# eval cache (one SQLite file per flake) fail with "database is busy" or an
# attribute "unexpectedly missing" (Nix 2.8, found by the rehearsal).
nix_cmd() { nix --extra-experimental-features 'nix-command flakes' --option eval-cache false "$@"; }

# Builds the planned image and keeps a GC root, or fails before building
# when the flake no longer gives the planned store path.
build_image() {
  local installable="${NIX_FLAKE}#${NIX_ATTRIBUTE}" current realized
  # Evaluate before building, so a flake that changed after synth fails in
  # seconds instead of after building the wrong image.
  echo "nix-image: evaluating ${installable}" >&2
  current=$(nix_cmd eval --raw "${installable}.outPath")
  if [ "$current" != "$PLANNED_STORE_PATH" ]; then
    echo "nix-image: the flake changed after synth; run synth/diff again (planned ${PLANNED_STORE_PATH}, flake now gives ${current})" >&2
    return 1
  fi

  echo "nix-image: building ${PLANNED_STORE_PATH} (GC root ${GC_ROOT}); an image build can take minutes" >&2
  mkdir -p "$(dirname "$GC_ROOT")"
  nix_cmd build --out-link "$GC_ROOT" "$installable"
  realized=$(readlink "$GC_ROOT")
  if [ "$realized" != "$PLANNED_STORE_PATH" ]; then
    rm -f "$GC_ROOT"
    echo "nix-image: the flake changed after synth; run synth/diff again (planned ${PLANNED_STORE_PATH}, built ${realized})" >&2
    return 1
  fi
  if [ ! -f "${PLANNED_STORE_PATH}/${IMAGE_FILE}" ]; then
    echo "nix-image: ${PLANNED_STORE_PATH} has no ${IMAGE_FILE}; check config.image.filePath" >&2
    return 1
  fi
  echo "nix-image: ready ${PLANNED_STORE_PATH}/${IMAGE_FILE}" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then build_image; fi
