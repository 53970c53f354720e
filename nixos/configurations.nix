# nixosConfigurations: one per configuration name that infra.json uses, in
# images.<id>.nixosConfiguration or hosts.<id>.nixosConfiguration, each built
# from the module nixos/hosts/<name>.nix. Attribute names come from infra.json
# alone, so listing them needs no evaluation of NixOS.
#
# Each configuration also gets nixos/common.nix (with the GCE base), which
# declares the options set here, so a host module need not import it; and,
# from infra.json (computed here only; lib/configurations.ts refuses settings
# that would give a configuration two answers):
# - the deploy keys of every host that runs it or boots an image built from
#   it (deploy-rs first logs in to the image's system);
# - EFI boot when the images it is, or its hosts boot from, are
#   UEFI_COMPATIBLE: a system installs its boot loader the way its image does;
# - nixGc, with its hosts' overrides;
# - infra.secrets: the secrets its hosts list (none for an image alone).
{
  nixosSystem,
  settings,
  system,
  deployUser,
}:
let
  images = settings.images or { };
  hosts = settings.hosts or { };
  hostIds = builtins.attrNames hosts;
  names = map (entry: entry.nixosConfiguration) (
    builtins.attrValues images ++ builtins.attrValues hosts
  );

  # Keys infra.json leaves out keep nixos/maintenance.nix's option defaults.
  nixGc = settings.nixGc or { };
  hostNixGc = id: nixGc // (hosts.${id}.nixGc or { });
  uefi = id: builtins.elem "UEFI_COMPATIBLE" (images.${id}.guestOsFeatures or [ ]);
  imageConfiguration = id: images.${id}.nixosConfiguration or null;
  # Sorted and without duplicates, as attribute names are.
  uniqueSorted =
    list:
    builtins.attrNames (
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = null;
        }) list
      )
    );

  facts =
    name:
    let
      runs = builtins.filter (id: hosts.${id}.nixosConfiguration == name) hostIds;
      boots = builtins.filter (id: imageConfiguration hosts.${id}.image == name) hostIds;
      imageIds =
        builtins.filter (id: images.${id}.nixosConfiguration == name) (builtins.attrNames images)
        ++ builtins.filter (id: images ? ${id}) (map (id: hosts.${id}.image) runs);
    in
    {
      deployKeys = uniqueSorted (
        builtins.concatMap (id: hosts.${id}.sshKeys or [ ]) (runs ++ boots)
      );
      efi = builtins.any uefi imageIds;
      nixGc = if runs == [ ] then nixGc else hostNixGc (builtins.head runs);
      # Hosts sharing a configuration list the same secrets (lib/configurations.ts checks).
      secrets = if runs == [ ] then { } else hosts.${builtins.head runs}.secrets or { };
    };

  # The modules in nixos/hosts, named for synth's "did you mean" (lib/nix.ts
  # reads this message, and the same from a flake that lacks a name).
  hostModules = builtins.concatMap (
    file:
    let
      match = builtins.match "(.+)\\.nix" file;
    in
    if match == null then [ ] else match
  ) (builtins.attrNames (builtins.readDir ./hosts));
  hostModule =
    name:
    let
      file = ./hosts + "/${name}.nix";
    in
    if builtins.pathExists file then
      file
    else
      throw (
        "nixosConfiguration \"${name}\" is unknown"
        + " (known: ${builtins.concatStringsSep ", " hostModules}):"
        + " infra.json uses it, but nixos/hosts/${name}.nix is missing"
      );

  # listToAttrs keeps the first of equal names: a name shared by an image and
  # a host (or by several hosts) is one configuration.
  configuration =
    name:
    let
      f = facts name;
    in
    {
      inherit name;
      value = nixosSystem {
        modules = [
          (hostModule name)
          {
            imports = [ ./common.nix ];
            infra = {
              inherit deployUser;
              inherit (f) deployKeys nixGc secrets;
            };
            virtualisation.googleComputeImage.efi = f.efi;
            nixpkgs.hostPlatform = system;
          }
        ];
      };
    };
in
builtins.listToAttrs (map configuration names)
