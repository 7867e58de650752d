#!/bin/sh
# `nox` without installing anything by hand: makes a small venv with nox and uv from locks/nox.txt
# on first use and whenever that lock changes (works where the system pip is externally managed,
# PEP 668), then runs nox with your arguments.
#   ./nox.sh -s tests            ./nox.sh -s eval-nat-hear
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
HOME_DIR=${HEAR_WAVJEPA_HOME:-$HOME/.cache/hear-wavjepa}
VENV="$HOME_DIR/venvs/nox"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python >= 3.10 (apt-get install -y python3 python3-venv)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: Python >= 3.10 is needed, found $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
LOCK_DIGEST=$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' locks/nox.txt)
if [ ! -x "$VENV/bin/nox" ] || [ "$(cat "$VENV/.lock-sha256" 2>/dev/null)" != "$LOCK_DIGEST" ]; then
    mkdir -p "$HOME_DIR/venvs"
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        pkg="python3-venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
        else
            echo "error: Python's venv module is missing; run: sudo apt-get install -y $pkg" >&2
            exit 1
        fi
    fi
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r locks/nox.txt
    echo "$LOCK_DIGEST" > "$VENV/.lock-sha256"
fi
exec "$VENV/bin/nox" "$@"
