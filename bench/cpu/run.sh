#!/usr/bin/env bash
# ESM-2 650M on the CPU: ours (fp32, bf16) vs fair-esm 2.0.0 on PyTorch (fp32, bf16 autocast) vs esm-cpp,
# in one run (issue 17). Makes its virtual environment here (bench/cpu/.venv, not committed) on first use.
#   bench/cpu/run.sh [BUILD_DIR=build] [extra esm_cpu_bench.py arguments, e.g. --threads 2]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
shift || true
if [[ ! -x "$here/.venv/bin/python" ]]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q --upgrade pip
  "$here/.venv/bin/pip" install -q torch fair-esm==2.0.0 esm-cpp
fi
"$here/.venv/bin/python" "$here/esm_cpu_bench.py" "$build/src/cli/virnucpro" "$here/work" "$@"
