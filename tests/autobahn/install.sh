#!/usr/bin/env bash
# Install Autobahn|Testsuite (wstest, Python 2.7 only) into <repo>/.autobahn/venv.
#
# Idempotent: does nothing when .autobahn/venv/bin/wstest already works.
# Exits 0 without installing when no Python 2.7 interpreter can be found
# (pyenv versions 2.7.*, or python2.7 on PATH); the tests then skip.
#
# Environment:
#   AUTOBAHN_DIR      where to install (default: <repo>/.autobahn)
#   AUTOBAHN_PYTHON2  explicit Python 2.7 interpreter to use
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
ab_dir="${AUTOBAHN_DIR:-$repo/.autobahn}"
venv="$ab_dir/venv"
requirements="$here/requirements-py27.txt"
virtualenv_pin="virtualenv==20.15.1"   # last release that runs on Python 2.7

# Keep Python 3 settings out of the Python 2 processes, and keep pip quiet.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP VIRTUAL_ENV
export PYTHONWARNINGS=ignore PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
export PIP_NO_INPUT=1 VIRTUALENV_NO_PERIODIC_UPDATE=1

wstest_works() {
    [[ -x "$venv/bin/wstest" ]] &&
        "$venv/bin/wstest" --help >/dev/null 2>&1 &&
        "$venv/bin/python" -c 'import autobahntestsuite.fuzzing' >/dev/null 2>&1
}

is_py27() {
    "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1
}

find_python27() {
    local cand root
    local -a cands=()
    if [[ -n "${AUTOBAHN_PYTHON2:-}" ]]; then
        cands+=("$AUTOBAHN_PYTHON2")
    fi
    root=""
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root 2>/dev/null || true)"
    fi
    root="${root:-${PYENV_ROOT:-$HOME/.pyenv}}"
    if [[ -d "$root/versions" ]]; then
        # newest 2.7.x first
        while IFS= read -r cand; do
            cands+=("$cand")
        done < <(ls -d "$root"/versions/2.7.*/bin/python 2>/dev/null | sort -rV)
    fi
    if command -v python2.7 >/dev/null 2>&1; then
        cands+=("$(command -v python2.7)")
    fi
    for cand in "${cands[@]+"${cands[@]}"}"; do
        if [[ -x "$cand" ]] && is_py27 "$cand"; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    return 1
}

# Run a command, showing its output only if it fails.
quiet() {
    local log rc=0
    log="$(mktemp)"
    "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "autobahn: command failed ($rc): $*" >&2
        # drop this machine's noise about missing local pip indexes
        grep -v -e "^ *WARNING: Url 'file://" -e "^ *WARNING: Location 'file://" \
            -e '^DEPRECATION: Python 2.7' "$log" | tail -n 40 >&2 || true
    fi
    rm -f "$log"
    return $rc
}

if wstest_works; then
    exit 0
fi

if ! python27="$(find_python27)"; then
    echo "autobahn: no Python 2.7 found, skipping"
    exit 0
fi

mkdir -p "$ab_dir"
# keep the whole directory out of git without touching the repo's .gitignore
[[ -f "$ab_dir/.gitignore" ]] || printf '*\n' >"$ab_dir/.gitignore"

# Serialise concurrent installs (e.g. several pytest workers).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ab_dir/.install.lock"
    flock 9
    if wstest_works; then
        exit 0
    fi
fi

start=$SECONDS
rm -rf "$venv"

# 1. virtualenv itself, installed with the 2.7 interpreter's own pip into a
#    private directory (Python 2.7 has no venv module).
bootstrap="$ab_dir/bootstrap"
if ! PYTHONPATH="$bootstrap" "$python27" -c 'import virtualenv' >/dev/null 2>&1; then
    rm -rf "$bootstrap"
    if ! "$python27" -m pip --version >/dev/null 2>&1; then
        # A bare 2.7 without pip: ensurepip into a private prefix.
        quiet "$python27" -m ensurepip --root "$ab_dir/ensurepip" --default-pip
        site="$(find "$ab_dir/ensurepip" -type d -name site-packages 2>/dev/null | head -n 1 || true)"
        if [[ -z "$site" ]]; then
            echo "autobahn: $python27 has no pip and ensurepip did not provide one" >&2
            exit 1
        fi
        pip_cmd=(env PYTHONPATH="$site" "$python27" -m pip)
    else
        pip_cmd=("$python27" -m pip)
    fi
    quiet "${pip_cmd[@]}" install --quiet --target "$bootstrap" "$virtualenv_pin"
fi

# 2. the virtualenv (uses virtualenv's bundled pip/setuptools/wheel, offline)
quiet env PYTHONPATH="$bootstrap" "$python27" -m virtualenv --quiet \
    --no-periodic-update "$venv"

# 3. the test suite with pinned dependencies
if ! quiet "$venv/bin/python" -m pip install --quiet -r "$requirements"; then
    rm -rf "$venv"
    exit 1
fi

if ! wstest_works; then
    echo "autobahn: installed, but $venv/bin/wstest does not run:" >&2
    "$venv/bin/wstest" --help 2>&1 | tail -n 20 >&2 || true
    rm -rf "$venv"
    exit 1
fi

echo "autobahn: wstest installed in $venv ($((SECONDS - start))s)"
