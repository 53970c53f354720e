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
  specs = settings.ociImages or { };
  ids = builtins.attrNames specs;
  # packages.<system> is keyed by these names, beside deploy-rs (flake.nix): an image
  # whose name another takes would vanish without a word. Synth refuses them first
  # (lib/settings-rules.ts); this is for the flake used without synth.
  reserved = [
    "deploy-rs"
    (settings.deploy.package or "deploy-rs")
  ];
  clash =
    id:
    let
      inherit (specs.${id}) package;
      before = builtins.filter (other: other < id && specs.${other}.package == package) ids;
    in
    if before != [ ] then
      "ociImages.${id}.package \"${package}\" is also ociImages.${builtins.head before}.package"
    else if builtins.elem package reserved then
      "ociImages.${id}.package \"${package}\" is the flake's deploy-rs package"
    else
      null;
  clashes = builtins.filter (c: c != null) (map clash ids);
in
if clashes != [ ] then
  throw (builtins.head clashes)
else
  builtins.listToAttrs (map (id: image id specs.${id}) ids)
