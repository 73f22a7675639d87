#!/usr/bin/env bash
# Creates .venv and installs equislt with its dev extras. Called by `make`; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

pick_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.10 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

need_fortran() {
    # py3nj (an escnn dependency) has no wheels: pip compiles it with a Fortran compiler.
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import py3nj' 2>/dev/null; then
        return 1
    fi
    ! command -v gfortran >/dev/null 2>&1
}

if need_fortran; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "[equislt] gfortran not found: installing it with apt-get (needed to build py3nj for escnn)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gfortran >/dev/null
    else
        cat >&2 <<'MSG'
[equislt] ERROR: no Fortran compiler found.
escnn depends on py3nj, which pip compiles from source with gfortran. Install it first, then rerun make:
    Debian/Ubuntu:  sudo apt-get install -y gfortran
    Fedora:         sudo dnf install -y gcc-gfortran
    macOS:          brew install gcc
MSG
        exit 1
    fi
fi

PY=$(pick_python) || {
    echo "[equislt] ERROR: Python 3.10-3.12 is needed (escnn's lie_learn has no wheels for 3.13)." >&2
    exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[equislt] creating $VENV with $("$PY" --version)"
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# A CPU build of torch, pinned so that pip does not pull a multi-GB CUDA build. Override with TORCH_SPEC;
# a torch already installed in the venv (any build) is kept.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    # shellcheck disable=SC2086  # TORCH_SPEC may hold several pip arguments (e.g. --index-url ...)
    "$VENV/bin/python" -m pip install -q $TORCH_SPEC
fi
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "[equislt] environment ready in $VENV"
