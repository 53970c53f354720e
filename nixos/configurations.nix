# nixosConfigurations: one per configuration name that infra.json uses, in
# images.<id>.nixosConfiguration or hosts.<id>.nixosConfiguration, each built
# from the module nixos/hosts/<name>.nix. Attribute names come from infra.json
# alone, so listing them needs no evaluation of NixOS.
{
  nixosSystem,
  settings,
  system,
  deployUser,
}:
let
  images = builtins.attrValues (settings.images or { });
  hosts = builtins.attrValues (settings.hosts or { });
  names = map (entry: entry.nixosConfiguration) (images ++ hosts);

  hostModule =
    name:
    let
      file = ./hosts + "/${name}.nix";
    in
    if builtins.pathExists file then
      file
    else
      throw "nixos/hosts/${name}.nix is missing; infra.json uses the configuration \"${name}\"";

  # listToAttrs keeps the first of equal names: a name shared by an image and
  # a host (or by several hosts) is one configuration.
  configuration = name: {
    inherit name;
    value = nixosSystem {
      modules = [
        (hostModule name)
        {
          infra.deployUser = deployUser;
          nixpkgs.hostPlatform = system;
        }
      ];
    };
  };
in
builtins.listToAttrs (map configuration names)
