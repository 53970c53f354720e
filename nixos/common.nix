# Settings every configuration shares: flakes, the deploy user deploy-rs logs
# in as (with its keys), SSH with keys only, a firewall that opens SSH and
# nothing else, bounded generations, and a guard against nixos-rebuild.
# nixos/configurations.nix adds this file to every configuration. It imports
# the GCE base: the guard sets an option of nixpkgs' GCE image module, which
# NixOS refuses as undefined without it.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.infra;
in
{
  imports = [
    ./base/gce.nix
    ./maintenance.nix
    ./manual-rebuild-guard.nix
    ./secrets.nix
  ];

  options.infra.deployUser = lib.mkOption {
    type = lib.types.passwdEntry lib.types.str;
    default = "deploy";
    example = "ops";
    description = ''
      Login of the user deploy-rs connects as over SSH. It is trusted by the
      Nix daemon (so it can copy unsigned closures) and runs sudo without a
      password (deploy-rs activates as root).
    '';
  };

  options.infra.deployKeys = lib.mkOption {
    type = lib.types.listOf lib.types.singleLineStr;
    default = [ ];
    description = ''
      SSH public keys of the deploy user, from infra.json's hosts.<id>.sshKeys.
      Declared here, they are in the image and in every system, so the first
      deploy does not wait for (or race) google-guest-agent, which writes the
      same keys from the instance metadata only once it is up.
    '';
  };

  config = {
    assertions = [
      {
        # google-compute-config.nix enables the guest agent's accounts daemon,
        # which manages metadata SSH keys, only when users are mutable.
        assertion = config.users.mutableUsers;
        message = "google-guest-agent writes metadata SSH keys: keep users.mutableUsers";
      }
    ];

    nix.settings = {
      experimental-features = [
        "nix-command"
        "flakes"
      ];
      trusted-users = [
        "root"
        cfg.deployUser
      ];
    };

    users.users.${cfg.deployUser} = {
      isNormalUser = true;
      extraGroups = [ "wheel" ];
      description = "deploy-rs";
      openssh.authorizedKeys.keys = cfg.deployKeys;
    };

    security.sudo.wheelNeedsPassword = false;

    # Synth checks each key's shape; the hosts' own OpenSSH reads it whole when
    # the system is built, so a key sshd would ignore fails the build instead
    # of the first login.
    system.checks = [
      (pkgs.runCommand "deploy-keys-check" { } ''
        for key in ${lib.escapeShellArgs cfg.deployKeys}; do
          printf '%s\n' "$key" > key.pub
          ${config.services.openssh.package}/bin/ssh-keygen -l -f key.pub >/dev/null || {
            echo "infra.deployKeys: OpenSSH refuses the key starting $(cut -c1-40 key.pub)" >&2
            exit 1
          }
        done
        touch "$out"
      '')
    ];

    services.openssh = {
      enable = true;
      openFirewall = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "no";
      };
    };

    # google-compute-config.nix sets this to mkDefault false (leaving it to
    # the VPC firewall); keep a host firewall too, open for SSH only.
    networking.firewall = {
      enable = true;
      allowedTCPPorts = [ 22 ];
      allowedUDPPorts = [ ];
    };

    system.stateVersion = lib.mkDefault "25.11";
  };
}
