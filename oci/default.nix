# packages.<system>.<ociImages.<id>.package> for every entry of infra.json's
# ociImages, each built by oci/<id>.nix with the shared helper oci/mk-image.nix
# and the version infra.json gives. Attribute names come from infra.json alone.
{
  pkgs,
  settings,
}:
let
  # The one place that names the images' source (org.opencontainers.image.source).
  source = settings.ociSource or "https://github.com/example/nixos-gce-cdktf";

  pipeline = pkgs.callPackage ../pkgs/pipeline.nix { };
  mkImage = pkgs.callPackage ./mk-image.nix { inherit source; };

  image = id: spec: {
    name = spec.package;
    value = pkgs.callPackage (./. + "/${id}.nix") {
      # ociImages.<id>.user, when set, replaces mk-image.nix's default user.
      mkImage = args: mkImage (args // (if spec ? user then { inherit (spec) user; } else { }));
      inherit pipeline;
      inherit (spec) version;
    };
  };
in
builtins.listToAttrs (builtins.attrValues (builtins.mapAttrs image (settings.ociImages or { })))
