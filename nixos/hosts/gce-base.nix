# The bare image every host boots first: the common settings and the GCE
# base, which nixos/configurations.nix gives every configuration, and nothing
# else. deploy-rs brings a host to its own configuration.
{ }
