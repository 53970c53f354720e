# deploy-rs nodes: one per key of infra.json's hosts, named by the host id
# (the instance name, which is also the SSH host name). deploy-rs connects as
# the deploy user and activates the host's NixOS configuration as root (via
# sudo); magicRollback and autoRollback keep deploy-rs's defaults (true).
{
  settings,
  deployUser,
  activateNixos,
  nixosConfigurations,
}:
let
  node = hostId: host: {
    hostname = hostId;
    sshUser = deployUser;
    profiles.system = {
      user = "root";
      path = activateNixos nixosConfigurations.${host.nixosConfiguration};
    };
  };
in
{
  nodes = builtins.mapAttrs node (settings.hosts or { });
}
