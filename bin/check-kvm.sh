#!/usr/bin/env bash
# Checks that this machine can build NixOS disk images: nixpkgs'
# make-disk-image runs in a QEMU VM and needs KVM (requiredSystemFeatures
# "kvm"). Without it Nix refuses the build or, on some setups, emulates for
# hours. Exits 1 with what to do when /dev/kvm is missing or not usable.
# KVM_DEVICE overrides the device (tests).
set -euo pipefail

device="${KVM_DEVICE:-/dev/kvm}"

if [ ! -e "$device" ]; then
  cat >&2 <<MSG
check-kvm: $device does not exist: this machine has no KVM, so it cannot build the image.
  - GitHub Actions: use a Linux runner with KVM (ubuntu-latest x64 runners have it; arm64 and
    some larger or self-hosted runners may not), or a self-hosted runner on bare metal or with
    nested virtualisation enabled.
  - Elsewhere: enable virtualisation (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd
    (modprobe kvm_intel), or build on a machine that has KVM and copy the result
    (nix copy --to ...).
MSG
  exit 1
fi

if [ ! -c "$device" ]; then
  echo "check-kvm: $device exists but is not a character device; it is not KVM." >&2
  exit 1
fi

if [ ! -r "$device" ] || [ ! -w "$device" ]; then
  cat >&2 <<MSG
check-kvm: $device exists but $(id -un) cannot open it for reading and writing.
  - GitHub Actions: give every user access with a udev rule:
      echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' |
        sudo tee /etc/udev/rules.d/99-kvm4all.rules
      sudo udevadm control --reload-rules && sudo udevadm trigger --name-match=kvm
  - Elsewhere: add the user to the kvm group (sudo usermod -aG kvm $(id -un)) and log in again.
MSG
  exit 1
fi

# Permissions can allow what the kernel still refuses: a container whose device
# cgroup does not admit KVM, or a node left behind without its driver. Only
# opening it tells.
if ! reason=$({ : <>"$device"; } 2>&1); then
  cat >&2 <<MSG
check-kvm: $device cannot be opened: ${reason##*: }.
  - In a container: pass the device through (docker run --device /dev/kvm, or the runtime's
    equivalent); the node alone is not access.
  - Elsewhere: check that kvm_intel or kvm_amd is loaded (lsmod | grep kvm) and that
    virtualisation is enabled in the firmware.
MSG
  exit 1
fi

echo "check-kvm: $device is usable"
