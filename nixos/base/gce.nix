# The bare Google Compute Engine image: nixpkgs' GCE module and nothing
# project-specific. It builds system.build.googleComputeImage, a
# "<image.baseName>.raw.tar.gz" (image.filePath) that GCE imports as a disk
# image, and imports google-compute-config.nix (OpenSSH, the guest agent,
# growing the root partition to the disk size chosen at creation).
# Defaults kept from the module: virtualisation.diskSize = "auto" (MB,
# sized to the closure), googleComputeImage.compressionLevel = 6.
# googleComputeImage.efi is set by nixos/configurations.nix from the image's
# UEFI_COMPATIBLE guest OS feature in infra.json, so the two always agree.
{
  lib,
  modulesPath,
  ...
}:
{
  imports = [ "${modulesPath}/virtualisation/google-compute-image.nix" ];

  # google-compute-config.nix turns OS Login on, which puts pam_oslogin_login
  # in sshd's account stack with default=die: guest-oslogin refuses users the
  # metadata server does not know, such as the deploy user, so deploy-rs
  # could not log in. The instances set enable-oslogin=FALSE too.
  security.googleOsLogin.enable = lib.mkForce false;
}
