#!/usr/bin/env bash
# The GPU check, for any machine with an NVIDIA GPU and this repository set up (bash tools/setup.sh):
# records the card, torch version and date, runs the benchmark, then H2's paper profile in full
# (pytest -n 3) and the positive control at paper scale (hypotheses/gpu_control_fast_at.py: FGSM-RS against
# standard training, ResNet18, compared with Wong et al.'s published accuracies), and writes a short
# summary. Each step's full output stays beside it in OUT_DIR.
#
#   ADVHYP_DATA_SOURCES=cifar10=PATH/TO/cifar10.zip bash tools/gpu_check.sh [OUT_DIR]
#
# OUT_DIR defaults to reports/gpu-check-<date>. Python: $PYTHON if set, else .venv/bin/python, else python3.
# H2 reuses finished runs from the run cache (.cache/advhyp): to time it from scratch, set ADVHYP_CACHE_DIR
# to an empty folder.
# Exit status: 0 when every step passed, 1 when one failed, 2 when there is no GPU or no data source.
set -u
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
dir=${1:-reports/gpu-check-$(date +%Y%m%d-%H%M%S)}

if ! nvidia-smi -L >/dev/null 2>&1 || ! "$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "gpu_check: no usable NVIDIA GPU here (nvidia-smi or torch.cuda.is_available() failed); run it on a GPU machine" >&2
  exit 2
fi
if [ -z "${ADVHYP_DATA_SOURCES:-}" ]; then
  echo "gpu_check: ADVHYP_DATA_SOURCES is not set; set it to cifar10=PATH (a CIFAR-10 .zip or ImageFolder)" >&2
  exit 2
fi
mkdir -p "$dir"
export PYTHONUNBUFFERED=1

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | paste -sd ';')"
  echo "torch: $("$py" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "data: $ADVHYP_DATA_SOURCES"
} > "$dir/environment.txt"
nvidia-smi > "$dir/nvidia-smi.txt" 2>&1

status=0
: > "$dir/steps.txt"
step() {  # step NAME COMMAND...: output to NAME.log; appends "NAME: exit N, S s" to steps.txt
  local name=$1 start=$SECONDS rc
  shift
  echo "gpu_check: $name ..."
  "$@" > "$dir/$name.log" 2>&1
  rc=$?
  echo "$name: exit $rc, $((SECONDS - start)) s" | tee -a "$dir/steps.txt"
  [ $rc = 0 ] || status=1
}
step bench "$py" -m harness.bench --suite --out "$dir/bench.json"
step h2 "$py" -m pytest hypotheses/test_pooling_type.py -n 3 --profile paper --reports-dir "$dir/h2" -rA
# The positive control at paper scale (ResNet18, all of CIFAR-10; its Standard arm is H2's Max, shared).
step control "$py" -m pytest hypotheses/gpu_control_fast_at.py -n 3 --profile paper --reports-dir "$dir/control" -rA

{
  cat "$dir/environment.txt" "$dir/steps.txt"
  echo; echo "bench (from bench.log):"
  sed -n '/matmul peak/,$p' "$dir/bench.log"
  echo; echo "H2, paper profile (from h2.log):"
  grep -E '^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) |^advhyp: |^=+ .* in [0-9.]+s' "$dir/h2.log"
  echo; echo "Positive control, paper scale (its results.json; published: FGSM-RS 86% clean, 46% PGD at 8/255):"
  "$py" -c 'import json, sys, glob
for path in glob.glob(sys.argv[1] + "/*/results.json"):
    doc = json.load(open(path))
    for c in doc["cases"]:
        t = c["test"]
        print(c["module"], c["verdict"], c["outcome"], "effect %+.3f [%+.3f, %+.3f]" % (t["effect"], *t["ci"]))
    for r in doc["runs"].values():
        last = r["records"][-1] if r["records"] else None
        print(" ", r["label"], "final clean %.3f, PGD@8 %.3f" % (last["clean"], last["adv"]["8"]["strongest"])
              if last else r["status"])' \
    "$dir/control"
} > "$dir/summary.txt"
cat "$dir/summary.txt"
exit $status
