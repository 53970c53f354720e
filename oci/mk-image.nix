# The one helper every OCI image uses: a layered image that runs one program,
# built reproducibly (fixed creation date) and labelled with the
# org.opencontainers.image.* keys. It is an uncompressed docker-archive
# (skopeo compresses the layers when the push step converts it to OCI). A docker-archive carries no
# manifest annotations, so these keys live in the image config's Labels,
# where registries and `skopeo inspect` show them. The revision is not here:
# the push step adds it (org.opencontainers.image.revision), so that the
# store path does not change with every commit.
{
  dockerTools,
  source,
}:
{
  name,
  version,
  description,
  program,
  # The container's user: nobody (fakeNss gives it a passwd entry), not root.
  # infra.json's ociImages.<id>.user names another for an image that needs one.
  user ? "65534:65534",
}:
let
  # Fixed instead of "now": equal inputs give equal images.
  created = "1970-01-01T00:00:01Z";
in
dockerTools.buildLayeredImage {
  inherit name created;
  # The deployment tags each push itself (by version and store path).
  tag = null;
  # Uncompressed: every skopeo release reads it without a temporary copy.
  compressor = "none";
  # fakeNss gives root and nobody a passwd entry, which libpq looks up.
  contents = [
    program
    dockerTools.fakeNss
  ];
  config = {
    User = user;
    Entrypoint = [ "${program}/bin/${program.meta.mainProgram}" ];
    Labels = {
      "org.opencontainers.image.title" = name;
      "org.opencontainers.image.description" = description;
      "org.opencontainers.image.version" = version;
      "org.opencontainers.image.source" = source;
      "org.opencontainers.image.licenses" = "MIT";
      "org.opencontainers.image.created" = created;
    };
  };
}
