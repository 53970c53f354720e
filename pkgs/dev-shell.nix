# devShells.<system>.default: the tools the CDKTF program and its tests call.
{
  mkShell,
  nodejs_20,
  opentofu,
  google-cloud-sdk,
  skopeo,
  umoci,
  jq,
  util-linux,
  deploy-rs,
}:
mkShell {
  packages = [
    nodejs_20
    opentofu
    google-cloud-sdk
    deploy-rs
    skopeo
    umoci
    jq
    # flock: the upload steps serialize uploads of one object.
    util-linux
  ];

  # cdktf runs this binary instead of `terraform`.
  TERRAFORM_BINARY_NAME = "tofu";
}
