# The pipeline jobs of pkgs/pipeline.nix (the programs the OCI images run) as
# plain systemd services, started by timers and talking to the local
# PostgreSQL of nixos/services/postgresql.nix over its unix socket.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.infra.services.pipeline;
  postgres = config.infra.services.postgres;
  jobs = pkgs.callPackage ../../pkgs/pipeline.nix { };
  token = cfg.sourceTokenSecret;

  units = {
    pipeline-ingest = {
      program = jobs.ingest;
      onCalendar = cfg.onCalendar.ingest;
    };
    pipeline-transform = {
      program = jobs.transform;
      onCalendar = cfg.onCalendar.transform;
    };
  };

  # The token reaches a job as a file systemd copies for it (LoadCredential),
  # never as an environment value: the environment shows in /proc and logs.
  secretUnits = lib.optional (token != null) "infra-secrets.service";
  service = name: unit: {
    description = "Pipeline job ${name}";
    requires = [ "postgresql.target" ] ++ secretUnits;
    after = [ "postgresql.target" ] ++ secretUnits;
    environment = {
      PGHOST = "/run/postgresql";
      PGDATABASE = postgres.database;
      PGUSER = cfg.user;
    }
    // lib.optionalAttrs (token != null) { SOURCE_TOKEN_FILE = "%d/source-token"; };
    serviceConfig = {
      Type = "oneshot";
      ExecStart = lib.getExe unit.program;
      User = cfg.user;
      Group = cfg.user;
      # The jobs need the PostgreSQL socket and nothing else.
      RestrictAddressFamilies = [ "AF_UNIX" ];
      NoNewPrivileges = true;
      PrivateTmp = true;
      PrivateDevices = true;
      ProtectSystem = "strict";
      ProtectHome = true;
    }
    // lib.optionalAttrs (token != null) { LoadCredential = "source-token:/run/secrets/${token}"; };
  };

  timer = _: unit: {
    wantedBy = [ "timers.target" ];
    timerConfig = {
      OnCalendar = unit.onCalendar;
      # Run a missed slot after boot or downtime.
      Persistent = true;
    };
  };
in
{
  options.infra.services.pipeline = {
    enable = lib.mkEnableOption "the pipeline jobs (ingest, transform) on systemd timers";

    user = lib.mkOption {
      type = lib.types.str;
      default = postgres.user;
      defaultText = lib.literalExpression "config.infra.services.postgres.user";
      description = ''
        System user the jobs run as. Peer authentication maps it to the
        PostgreSQL role of the same name, which owns the database.
      '';
    };

    sourceTokenSecret = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "pipeline-source-token";
      description = ''
        Secret (one of the host's infra.secrets, listed in infra.json) that
        holds the source system's API token. The jobs read it from the file
        $SOURCE_TOKEN_FILE names, their private copy, and start only after
        infra-secrets.service fetched it.
      '';
    };

    onCalendar = {
      ingest = lib.mkOption {
        type = lib.types.str;
        default = "*-*-* *:00:00";
        description = "When pipeline-ingest runs, as a systemd.time(7) calendar event (hourly).";
      };

      transform = lib.mkOption {
        type = lib.types.str;
        default = "*-*-* *:15:00";
        description = "When pipeline-transform runs. Default: hourly, 15 minutes after ingest.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = postgres.enable;
        message = "infra.services.pipeline needs infra.services.postgres.enable";
      }
      {
        assertion = token == null || config.infra.secrets ? ${token};
        message =
          "infra.services.pipeline.sourceTokenSecret: \"${toString token}\" is not among this "
          + "host's secrets; list it under hosts.<id>.secrets in infra.json";
      }
    ];

    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
      description = "Pipeline jobs";
    };
    users.groups.${cfg.user} = { };

    # For runs by hand, e.g. `sudo -u pipeline pipeline-ingest rows.csv`.
    environment.systemPackages = [
      jobs.ingest
      jobs.transform
    ];

    systemd.services = lib.mapAttrs service units;
    systemd.timers = lib.mapAttrs timer units;
  };
}
