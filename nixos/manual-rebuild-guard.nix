# Hosts are managed through the flake and deploy-rs. The GCE image's stock
# /etc/nixos/configuration.nix imports nixpkgs' GCE module and nothing else,
# so a `nixos-rebuild switch` on a host would silently drop every module of
# this project (deploy user, keys, firewall, services). This file replaces it
# with one that fails with what to do instead: in the image (configFile) and,
# on every activation, through /etc (which replaces a file already there).
let
  guard = builtins.toFile "configuration.nix" ''
    # This host is managed by nixos-gce-cdktf through deploy-rs.
    throw (
      "this host is managed by nixos-gce-cdktf via deploy-rs; change the flake and deploy"
      + " (a nixos-rebuild here would drop the project's modules)"
    )
  '';
in
{
  virtualisation.googleComputeImage.configFile = guard;
  environment.etc."nixos/configuration.nix".source = guard;
}
