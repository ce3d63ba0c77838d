# Sourced by scripts/test.sh and scripts/serve.sh: installs missing tools, once.
# Debian packages need root (or sudo); everything else comes from crates.io and npm.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_missing=()
ldconfig -p | grep -q 'libvulkan.so.1' || apt_missing+=(libvulkan1)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || apt_missing+=(mesa-vulkan-drivers)
if [ "${ENET_BROWSER:-1}" = 1 ]; then
  command -v chromium >/dev/null || apt_missing+=(chromium)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing ${apt_missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# wasm-bindgen-cli must equal the wasm-bindgen version in Cargo.lock exactly.
if [ "${ENET_BROWSER:-1}" = 1 ]; then
  wb=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb\$"; then
    echo "installing wasm-bindgen-cli $wb"
    cargo install -q wasm-bindgen-cli --version "=$wb"
  fi
  # Trunk 0.21 is the last release that builds with this toolchain.
  if ! trunk --version 2>/dev/null | grep -q '^trunk 0.21'; then
    echo "installing trunk 0.21.14 (takes several minutes, once)"
    cargo install -q trunk --version 0.21.14 --locked
  fi
fi

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
