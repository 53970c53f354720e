# Index of the flake: wiring only. What exists (images, hosts, OCI images) is
# listed once, in infra.json, which the CDKTF program reads too; the logic
# lives in the imported files.
{
  description = "NixOS images and hosts on Google Compute Engine, deployed with deploy-rs";

  inputs = {
    nixpkgs.url = "github:nixos/nixpkgs/nixos-25.11";
    deploy-rs.url = "github:serokell/deploy-rs";
    deploy-rs.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    {
      self,
      nixpkgs,
      deploy-rs,
    }:
    let
      settings = builtins.fromJSON (builtins.readFile ./infra.json);
      system = settings.system or "x86_64-linux";
      deployUser = settings.deploy.user or "deploy";
      pkgs = nixpkgs.legacyPackages.${system};
      deployRs = deploy-rs.packages.${system}.deploy-rs;
      deployChecks = deploy-rs.lib.${system}.deployChecks self.deploy;
      # No output depends on the commit (self.rev): store paths must not
      # change when only the commit does. The OCI push step labels images
      # with the revision instead.
      ociImages = import ./oci { inherit pkgs settings; };
    in
    {
      nixosConfigurations = import ./nixos/configurations.nix {
        inherit (nixpkgs.lib) nixosSystem;
        inherit settings system deployUser;
      };

      deploy = import ./nixos/deploy.nix {
        inherit settings deployUser;
        inherit (self) nixosConfigurations;
        activateNixos = deploy-rs.lib.${system}.activate.nixos;
      };

      packages.${system} = ociImages // {
        deploy-rs = deployRs;
      };

      checks.${system} = deployChecks // {
        formatting = pkgs.callPackage ./pkgs/nixfmt-check.nix { src = self; };
      };

      formatter.${system} = pkgs.nixfmt-tree;

      devShells.${system}.default = pkgs.callPackage ./pkgs/dev-shell.nix { deploy-rs = deployRs; };
    };
}
