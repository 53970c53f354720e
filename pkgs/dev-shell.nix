# devShells.<system>.default: the tools the CDKTF program and its tests call.
{
  lib,
  path,
  stdenv,
  mkShell,
  nodejs_20,
  google-cloud-sdk,
  skopeo,
  umoci,
  jq,
  util-linux,
  deploy-rs,
}:
let
  # The Terraform binary CI applies with (not OpenTofu: one binary on one
  # state). nixpkgs' terraform is unfree (BSL 1.1): allowed by name, here only.
  withTerraform = import path {
    localSystem = stdenv.hostPlatform.system;
    config.allowUnfreePredicate = pkg: lib.getName pkg == "terraform";
  };
in
mkShell {
  packages = [
    nodejs_20
    withTerraform.terraform
    google-cloud-sdk
    deploy-rs
    skopeo
    umoci
    jq
    # flock: the upload steps serialize uploads of one object.
    util-linux
  ];

  # CI pins .terraform-version; nixpkgs carries one Terraform 1.x, which may
  # be newer. A newer 1.x may write state an older one cannot read: say so.
  shellHook = ''
    pinned=$(cat .terraform-version 2>/dev/null || true)
    have=$(terraform version -json | jq -r .terraform_version)
    if [ -n "$pinned" ] && [ "$have" != "$pinned" ]; then
      echo "dev shell: terraform $have, CI pins $pinned (.terraform-version); apply the shared state from one version (docs/github.md)" >&2
    fi
  '';
}
