# Settings every configuration shares: flakes, the deploy user deploy-rs logs
# in as, SSH with keys only, and a firewall that opens SSH and nothing else.
{
  config,
  lib,
  ...
}:
let
  cfg = config.infra;
in
{
  options.infra.deployUser = lib.mkOption {
    type = lib.types.passwdEntry lib.types.str;
    default = "deploy";
    example = "ops";
    description = ''
      Login of the user deploy-rs connects as over SSH. It is trusted by the
      Nix daemon (so it can copy unsigned closures) and runs sudo without a
      password (deploy-rs activates as root). Its SSH keys are not set here:
      google-guest-agent writes them to its ~/.ssh/authorized_keys from the
      "ssh-keys" instance metadata.
    '';
  };

  config = {
    assertions = [
      {
        # google-compute-config.nix enables the guest agent's accounts daemon,
        # which manages metadata SSH keys, only when users are mutable.
        assertion = config.users.mutableUsers;
        message = "infra.deployUser gets its SSH keys from GCE metadata: keep users.mutableUsers";
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
    };

    security.sudo.wheelNeedsPassword = false;

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
