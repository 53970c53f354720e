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

  service = name: unit: {
    description = "Pipeline job ${name}";
    requires = [ "postgresql.target" ];
    after = [ "postgresql.target" ];
    environment = {
      PGHOST = "/run/postgresql";
      PGDATABASE = postgres.database;
      PGUSER = cfg.user;
    };
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
    };
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
