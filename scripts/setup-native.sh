#!/usr/bin/env bash
# Checks (and on Debian/Ubuntu as root, installs) the native tools zoo's build needs besides a
# C/C++ compiler: cmake and nasm, which the `turbojpeg` crate uses to build its vendored
# libjpeg-turbo (the JPEG decoder of `zoo eval`, bit-identical to Pillow's).
#
# Kept apart from scripts/setup.sh on purpose: setup.sh's stamp hashes its own text, so an
# edit there would make every checkout reinstall its 3.9 GB venv.
set -euo pipefail

missing=()
for tool in cmake nasm; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    printf 'setup: installing %s (libjpeg-turbo build for zoo eval)\n' "${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
else
    printf 'setup: need %s to build libjpeg-turbo (Debian: sudo apt-get install cmake nasm)\n' "${missing[*]}" >&2
    exit 2
fi
