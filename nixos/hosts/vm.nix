# A data VM: the bare image (nixos/configurations.nix adds common.nix and the
# GCE base) plus a local PostgreSQL and the pipeline jobs on timers. The host
# firewall stays open for SSH only.
{
  imports = [
    ../services/postgresql.nix
    ../services/pipeline.nix
  ];

  infra.services.postgres.enable = true;
  infra.services.pipeline.enable = true;
}
