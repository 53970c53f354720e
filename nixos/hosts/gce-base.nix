# The bare image every host boots first: the common settings and the GCE
# base, nothing else. deploy-rs brings a host to its own configuration.
{
  imports = [
    ../common.nix
    ../base/gce.nix
  ];
}
