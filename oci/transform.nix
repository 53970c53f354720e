# OCI image "transform": runs pipeline-transform. Connection settings come
# from the container's environment (PGHOST, PGDATABASE, PGUSER, PGPASSWORD, ...).
{
  mkImage,
  pipeline,
  version,
}:
mkImage {
  name = "transform";
  inherit version;
  description = "Recomputes daily_totals from raw_events in PostgreSQL";
  program = pipeline.transform;
}
