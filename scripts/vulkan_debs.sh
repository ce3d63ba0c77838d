#!/usr/bin/env bash
# Downloads Debian's Vulkan loader (and the GL/EGL libraries NVIDIA's Vulkan driver loads)
# into .gl/ as .deb files, for a GPU machine that has the NVIDIA driver but no loader:
# scripts/gpu_bench.sh unpacks them there. Run on a Debian/amd64 machine with apt.
#
#   scripts/vulkan_debs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gl
lists=$(mktemp -d)
mkdir -p "$lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${o[@]}" update -qq
(cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
rm -rf "$lists"
ls .gl
