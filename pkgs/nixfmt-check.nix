# checks.<system>.formatting: every .nix file of the flake is in the form the
# RFC 166 formatter (nixpkgs' nixfmt) gives it. `nix fmt` fixes a failure.
{
  runCommand,
  nixfmt,
  src,
}:
runCommand "nixfmt-check" { } ''
  cd ${src}
  find . -name '*.nix' -type f -not -path './node_modules/*' -print0 \
    | xargs -0 --no-run-if-empty ${nixfmt}/bin/nixfmt --check
  touch $out
''
