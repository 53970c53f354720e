# A data VM: the bare image plus a local PostgreSQL and the pipeline jobs on
# timers. The host firewall stays open for SSH only.
{
  imports = [
    ../common.nix
    ../base/gce.nix
    ../services/postgresql.nix
    ../services/pipeline.nix
  ];

  infra.services.postgres.enable = true;
  infra.services.pipeline.enable = true;
}
