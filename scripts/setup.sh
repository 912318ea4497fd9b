#!/usr/bin/env bash
# Sets up everything zoo's build and tests need on a fresh machine that has only rustup Rust,
# a C/C++ compiler and python3 (3.11+) with pip:
#   .venv/        a Python venv with torch==2.13.0, torchvision, timm and numpy (scripts/requirements.txt)
#   .libtorch     a symlink to that venv's site-packages, so that `.libtorch/torch` is the libtorch
#                 that `tch` builds against (LIBTORCH in .cargo/config.toml).
# libtorch comes from PyPI's torch wheel because tch 0.26 needs libtorch 2.13.0 exactly and
# download.pytorch.org is not reachable from CI. The wheel's CUDA libraries are kept: Python's
# `import torch` loads libtorch_python.so, which links libtorch_cuda.so, cuDNN and NCCL.
#
# Idempotent: a stamp file records the hash of the requirements; a second run only checks it.
# Prints progress to stderr; the last line of stdout is the venv's python.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
req="scripts/requirements.txt"
venv=".venv"
python="${PYTHON:-python3}"

log() { printf 'setup: %s\n' "$*" >&2; }

stamp_value="$(cat "$req" "$0" | sha256sum | cut -c1-16)"
stamp="$venv/.zoo-setup-stamp"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" && -x "$venv/bin/python" ]]; then
    log "venv up to date ($venv)"
else
    "$python" - <<'PY' || { log "need python >= 3.11 (set PYTHON=...)"; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
    # A changed requirements file means a fresh venv, so that it holds exactly that set.
    if [[ -e "$venv" ]]; then
        log "requirements changed: recreating $venv"
        rm -rf "$venv"
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        # Debian's python3 has no ensurepip without python3-venv: fall back to a pip-less venv
        # driven by the host's pip (`pip --python`, pip >= 22.3).
        "$python" -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; "$python" -m venv --without-pip "$venv"; }
    fi
    if [[ -x "$venv/bin/pip" ]]; then
        pip=("$venv/bin/python" -m pip)
    else
        pip=("$python" -m pip --python "$venv/bin/python")
    fi
    log "installing the $(grep -c "^[A-Za-z]" "$req") packages of $req (3.9 GB, mostly the CUDA libraries that import torch links)"
    "${pip[@]}" install --disable-pip-version-check --no-input --progress-bar off -q --no-deps -r "$req"
    log "checking the venv imports torch, torchvision, timm and numpy"
    "$venv/bin/python" - <<'PY'
import numpy, timm, torch, torchvision
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
print(f"setup: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, numpy {numpy.__version__}", file=__import__("sys").stderr)
PY
    printf '%s' "$stamp_value" > "$stamp"
fi

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ -L .libtorch || ! -e .libtorch ]]; then
    # A relative link keeps the checkout relocatable.
    rel="${site#"$root"/}"
    if [[ "$(readlink .libtorch 2>/dev/null || true)" != "$rel" ]]; then
        ln -sfn "$rel" .libtorch
        log ".libtorch -> $rel"
    fi
else
    log ".libtorch is a directory, leaving it as it is"
fi
version="$(sed -n "s/^__version__ = '\([^']*\)'.*/\1/p" .libtorch/torch/version.py 2>/dev/null || true)"
if [[ "${version%%+*}" != "2.13.0" ]]; then
    log ".libtorch/torch is libtorch '${version}', tch 0.26 needs 2.13.0"
    exit 2
fi
echo "$root/$venv/bin/python"
