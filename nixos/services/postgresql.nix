# A local PostgreSQL with one database, owned by a role of the same name.
# Clients connect through the unix socket in /run/postgresql only (peer
# authentication: the system user's name is the role); the server opens no
# TCP port, not even on localhost.
{
  config,
  lib,
  ...
}:
let
  cfg = config.infra.services.postgres;
in
{
  options.infra.services.postgres = {
    enable = lib.mkEnableOption "a local PostgreSQL server reachable through its unix socket only";

    database = lib.mkOption {
      type = lib.types.str;
      default = "pipeline";
      description = "Database to create, owned by {option}`infra.services.postgres.user`.";
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = cfg.database;
      defaultText = lib.literalExpression "config.infra.services.postgres.database";
      description = ''
        Role that owns the database. Peer authentication lets the system user
        of the same name log in as it. nixpkgs' `ensureDBOwnership` needs it to
        be named like the database.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.user == cfg.database;
        message = "infra.services.postgres: user ${cfg.user} must equal database ${cfg.database}";
      }
    ];

    services.postgresql = {
      enable = true;
      enableTCPIP = false;
      # The module sets "localhost" when enableTCPIP is false; "" means the
      # unix socket only.
      settings.listen_addresses = lib.mkForce "";
      ensureDatabases = [ cfg.database ];
      ensureUsers = [
        {
          name = cfg.user;
          ensureDBOwnership = true;
        }
      ];
    };
  };
}
