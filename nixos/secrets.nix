# Secrets from Google Secret Manager, fetched with the VM's own service
# account into /run/secrets (tmpfs) at boot, before the services that need
# them. infra.json's hosts.<id>.secrets lists them: nixos/configurations.nix
# sets infra.secrets from it, and the stack lets the host read exactly those.
# Values never enter the Nix store, git or Terraform. The fetching is
# nixos/secrets-fetch.sh; docs/secrets.md tells how to add, rotate and revoke.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.infra.secrets;

  fetch = pkgs.writeShellApplication {
    name = "infra-secrets-fetch";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.curl
      pkgs.jq
    ];
    text = builtins.readFile ./secrets-fetch.sh;
  };

  # NAME:OWNER:MODE, as secrets-fetch.sh reads them; none of the three can hold a ':' or a space.
  entries = lib.mapAttrsToList (name: file: "${name}:${file.owner}:${file.mode}") cfg;
in
{
  options.infra.secrets = lib.mkOption {
    type = lib.types.attrsOf (
      lib.types.submodule {
        options = {
          owner = lib.mkOption {
            type = lib.types.passwdEntry lib.types.str;
            default = "root";
            description = "User that owns the file; its group is the user's login group.";
          };
          mode = lib.mkOption {
            type = lib.types.strMatching "0[0-7][0-7]0";
            default = "0400";
            description = "Mode of the file. Others never get access.";
          };
        };
      }
    );
    default = { };
    example = lib.literalExpression ''{ warehouse-password = { owner = "pipeline"; }; }'';
    description = ''
      Secret Manager secrets this host reads, by secret id, each written to
      /run/secrets/<name>. Set from infra.json's hosts.<id>.secrets; a secret
      set here alone is not granted to the host, and its fetch fails (403).
      A service that reads one orders after infra-secrets.service and
      requires it. `systemctl restart infra-secrets` fetches them again.
    '';
  };

  config = lib.mkIf (cfg != { }) {
    # The name is a file name under /run/secrets and part of the API's URL.
    assertions =
      lib.mapAttrsToList (name: _: {
        assertion = builtins.match "[A-Za-z0-9_-]{1,255}" name != null;
        message = "infra.secrets: \"${name}\" is no Secret Manager id (letters, digits, -, _)";
      }) cfg
      ++ lib.mapAttrsToList (name: file: {
        assertion = config.users.users ? ${file.owner};
        message =
          "infra.secrets.${name}: owner \"${file.owner}\" is no user of this host; "
          + "declare it or choose another owner in infra.json";
      }) cfg;

    systemd.services.infra-secrets = {
      description = "Fetch this host's secrets from Secret Manager into /run/secrets";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # A deploy that changes the unit restarts it: the default (stop, then
      # start) would remove /run/secrets before fetching again.
      stopIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${lib.getExe fetch} ${lib.concatStringsSep " " entries}";
        # Kept while a restart fetches again; gone on stop, and when the unit
        # fails (systemd removes a failed unit's directory): services that
        # require it fail too, rather than read a stale value. The script
        # removes the files of secrets no longer listed.
        RuntimeDirectory = "secrets";
        RuntimeDirectoryMode = "0751";
        RuntimeDirectoryPreserve = "restart";
        # Above the script's retries (SECRETS_RETRY_SECONDS and
        # SECRETS_DENIED_RETRY_SECONDS, 120 s each, from its start) and below
        # deploy-rs's activation timeout.
        TimeoutStartSec = "200s";
      };
    };
  };
}
