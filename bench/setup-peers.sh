#!/bin/sh
# Install the process managers bgr is compared with into bench/.peers/ (never into the project):
#   bench/.peers/venv/          a venv with supervisor (supervisord, supervisorctl) from PyPI
#   bench/.peers/node_modules/  pm2 from npm (needs node >= 18 and npm on PATH)
# bench/run.py finds them there; delete bench/.peers/ to uninstall. Either half may fail on its own
# (no node, no network): run.py then marks that peer "skipped" and says why.
#
# Usage: sh bench/setup-peers.sh            (PYTHON=/path/to/python3 to choose the venv's interpreter)
set -u

SUPERVISOR_VERSION=4.3.0
PM2_VERSION=7.0.4

here=$(cd "$(dirname "$0")" && pwd)
peers="$here/.peers"
mkdir -p "$peers"
status=0

# The venv's base interpreter should be the one bgr is measured with, so both pay the same startup.
python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in "$here/../.venv/bin/python" python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            python=$candidate
            break
        fi
    done
fi
echo "supervisor $SUPERVISOR_VERSION -> $peers/venv (python: $python)"
if "$python" -m venv --clear "$peers/venv" &&
    "$peers/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "supervisor==$SUPERVISOR_VERSION"; then
    "$peers/venv/bin/supervisord" --version
else
    echo "supervisor: install failed" >&2
    status=1
fi

echo "pm2 $PM2_VERSION -> $peers/node_modules"
if command -v npm >/dev/null 2>&1; then
    # A package.json of our own keeps npm from walking up and installing into the repository root.
    [ -f "$peers/package.json" ] || echo '{"name": "bgr-bench-peers", "private": true}' >"$peers/package.json"
    if npm install --prefix "$peers" --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION"; then
        # Not `pm2 --version`: that starts a pm2 daemon (in ~/.pm2 unless PM2_HOME is set).
        node -p 'require(process.argv[1]).version' "$peers/node_modules/pm2/package.json"
    else
        echo "pm2: npm install failed" >&2
        status=1
    fi
else
    echo "pm2: npm not found on PATH; skipped" >&2
    status=1
fi
exit $status
