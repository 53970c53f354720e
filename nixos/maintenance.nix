# Bounded system generations and a scheduled store GC. deploy-rs adds a
# generation of the system profile on every deploy, and nix.gc only frees
# what no generation still references, so on its own it never bounds the
# store: a 20 GB disk fills. The profile is first pruned to its newest
# generations, then nix-collect-garbage frees the rest.
#
# infra.json's nixGc.schedule takes a few calendar forms; a host module sets
# any other systemd.time(7) event as nix.gc.dates, which wins over it. Either
# way the hosts' own systemd-analyze checks the value when the system is built
# (system.checks), so an event systemd refuses fails the build, not the timer.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.infra.nixGc;
in
{
  options.infra.nixGc = {
    keepGenerations = lib.mkOption {
      type = lib.types.ints.positive;
      default = 5;
      description = ''
        System generations kept, the current one included; older ones are
        deleted before each garbage collection. Set from infra.json's nixGc.
      '';
    };

    schedule = lib.mkOption {
      type = lib.types.singleLineStr;
      default = "weekly";
      example = "Sun *-*-* 03:15:00";
      description = ''
        When generations are pruned and the store collected, as a
        systemd.time(7) calendar event. A host module's nix.gc.dates wins
        over it.
      '';
    };
  };

  config = {
    nix.gc = {
      automatic = true;
      dates = lib.mkDefault cfg.schedule;
    };

    system.checks = [
      # NixOS' systemd knows a time zone only as a file in /etc/zoneinfo (its
      # zoneinfo patch; it ignores TZDIR), which the build sandbox lacks: a
      # trailing zone is checked against tzdata here, the rest by systemd.
      (pkgs.runCommand "nix-gc-dates-check" { TZDIR = "${pkgs.tzdata}/share/zoneinfo"; } ''
        for event in ${lib.escapeShellArgs (lib.toList config.nix.gc.dates)}; do
          spec=$event zone=''${event##* }
          if [ "$zone" != "$event" ] && [ "$(head -c 4 "$TZDIR/$zone" 2>/dev/null)" = TZif ]; then
            spec=''${event% *}
          fi
          ${config.systemd.package}/bin/systemd-analyze calendar "$spec" >/dev/null || {
            echo "nix.gc.dates: systemd refuses the calendar event '$event' (see systemd.time(7))" >&2
            exit 1
          }
        done
        touch "$out"
      '')
    ];

    # Pulled in by nix-gc.service (timer or by hand) and ordered before it; a
    # failed prune still lets the GC run (wantedBy, not requiredBy). nix-env's
    # "+N" keeps the current generation, the N - 1 before it, and any newer
    # one (after a rollback, the generations rolled back from stay).
    systemd.services.nix-gc-generations = {
      description = "Keep the newest ${toString cfg.keepGenerations} NixOS system generations";
      wantedBy = [ "nix-gc.service" ];
      before = [ "nix-gc.service" ];
      path = [ config.nix.package ];
      serviceConfig.Type = "oneshot";
      script = ''
        nix-env --profile /nix/var/nix/profiles/system \
          --delete-generations +${toString cfg.keepGenerations}
      '';
    };
  };
}
