# The bare Google Compute Engine image: nixpkgs' GCE module and nothing
# project-specific. It builds system.build.googleComputeImage, a
# "<image.baseName>.raw.tar.gz" (image.filePath) that GCE imports as a disk
# image, and imports google-compute-config.nix (OpenSSH, OS Login, the guest
# agent, growing the root partition to the disk size chosen at creation).
# Defaults kept from the module: virtualisation.diskSize = "auto" (MB,
# sized to the closure), googleComputeImage.compressionLevel = 6, efi = false.
{
  modulesPath,
  ...
}:
{
  imports = [ "${modulesPath}/virtualisation/google-compute-image.nix" ];
}
