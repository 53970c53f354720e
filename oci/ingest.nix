# OCI image "ingest": runs pipeline-ingest. Connection settings come from the
# container's environment (PGHOST, PGDATABASE, PGUSER, PGPASSWORD, ...).
{
  mkImage,
  pipeline,
  version,
}:
mkImage {
  name = "ingest";
  inherit version;
  description = "Appends CSV rows (or a heartbeat row) to raw_events in PostgreSQL";
  program = pipeline.ingest;
}
