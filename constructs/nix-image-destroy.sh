# NixImage destroy step: `bash constructs/nix-image-destroy.sh` from the
# project root (local-exec, when = destroy). Drops the image's GC root, so
# `nix-collect-garbage` may collect the image once the stack is destroyed.
# Terraform runs it on `terraform destroy` (cdktf destroy) only: it skips
# destroy provisioners of builds an image change replaces (deposed,
# create_before_destroy) and of builds removed from the configuration; the
# GcRoots step drops those roots.
# Environment (DropImageRootEnv in nix-image.ts): GC_ROOT
set -euo pipefail
# Only the symlink nix build made; two images of one configuration share it.
if [ -L "$GC_ROOT" ]; then
  rm -f "$GC_ROOT"
  echo "nix-image: dropped ${GC_ROOT} (its build was destroyed)" >&2
fi
