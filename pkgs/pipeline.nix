# The pipeline's jobs, one program each. These same store paths run as systemd
# services on hosts (nixos/services/pipeline.nix) and as the entrypoints of the
# OCI images (oci/). They reach PostgreSQL through the libpq environment
# (PGHOST, PGDATABASE, PGUSER, ...) and create their tables when missing.
{
  writeShellApplication,
  writeText,
  postgresql,
}:
let
  schema = writeText "pipeline-schema.sql" ''
    SET client_min_messages = warning;
    CREATE TABLE IF NOT EXISTS raw_events (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source text NOT NULL,
      value numeric NOT NULL,
      ingested_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS daily_totals (
      day date NOT NULL,
      source text NOT NULL,
      events bigint NOT NULL,
      total numeric NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (day, source)
    );
  '';

  aggregate = writeText "pipeline-transform.sql" ''
    INSERT INTO daily_totals (day, source, events, total)
    SELECT ingested_at::date, source, count(*), sum(value)
    FROM raw_events
    GROUP BY 1, 2
    ON CONFLICT (day, source) DO UPDATE
      SET events = excluded.events, total = excluded.total, updated_at = now();
  '';

  # Start of every job: a psql that stops at the first error, then the tables.
  prelude = ''
    psql() { command psql --no-psqlrc --set ON_ERROR_STOP=1 "$@"; }
    psql --quiet --file ${schema}
  '';

  job =
    name: body:
    writeShellApplication {
      inherit name;
      runtimeInputs = [ postgresql ];
      text = prelude + body;
    };
in
{
  # pipeline-ingest [FILE.csv]: appends the file's rows (a header line, then
  # source,value) to raw_events. Without a file it records one heartbeat row,
  # so every scheduled run leaves a trace.
  ingest = job "pipeline-ingest" ''
    if [ "$#" -gt 0 ]; then
      psql --command '\copy raw_events (source, value) from pstdin with (format csv, header)' < "$1"
    else
      psql --command "INSERT INTO raw_events (source, value) VALUES ('heartbeat', 1)"
    fi
  '';

  # pipeline-transform: recomputes daily_totals (row count and sum of value per
  # day and source) from raw_events.
  transform = job "pipeline-transform" ''
    psql --file ${aggregate}
  '';
}
