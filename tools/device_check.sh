#!/usr/bin/env bash
# The one prepared GPU check: H2 in full on the paper profile (pytest -n 3), and beside it the H1
# five-epoch, three-rounding-mode check with APGD on the final checkpoint (tools/device_h1.py).
# The device machine has torch, timm, pytest-xdist, scipy and matplotlib, but no torchattacks and no data.
# Prepare here, once:
#   mkdir -p .data && cp ../shared/data/cifar10-jpeg75.zip .data/
#   .venv/bin/pip install --no-deps --target .benchdeps torchattacks==3.5.1
# then call the device tool's run with command "bash tools/device_check.sh", carry [".data", ".benchdeps"],
# timeout_s 380 (it took 253 s on an H100, 2026-11-26). The benchmark is a separate call (about 4 minutes on
# an H200 or H100; torchattacks from .benchdeps):
#   PYTHONPATH=$PWD/.benchdeps python3 -m harness.bench --out $OUT/bench.json   (ViTs also timed compiled)
set -u
OUT=${OUT:-/tmp/device-out}; mkdir -p "$OUT"
export PYTHONPATH="$PWD/.benchdeps:$PWD" PYTHONUNBUFFERED=1
DATA=cifar10=.data/cifar10-jpeg75.zip
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
python3 -c "import harness.data as d, pathlib; d.load('cifar10', d.Sources(bindings=(('cifar10', '.data/cifar10-jpeg75.zip'),)), pathlib.Path('.cache/advhyp'))"  # decode once for all
start=$(date +%s)
(python3 -m pytest hypotheses/test_pooling_type.py -n 3 -p no:cacheprovider --profile paper \
   --data-source $DATA --reports-dir "$OUT/h2" -rA > "$OUT/h2.log" 2>&1; echo "h2 done $(( $(date +%s) - start ))s" >> "$OUT/h2.log") &
for i in 1 2; do  # two copies split Baseline and Round through the cache
  out="$OUT/h1.json"; [ $i = 2 ] && out=/tmp/h1-2.json  # $OUT takes 8 files at most
  python3 tools/device_h1.py --data-source $DATA --epochs ${H1_EPOCHS:-5} --cache .cache/advhyp --out "$out" > "$OUT/h1-$i.log" 2>&1 &
done
wait
echo "all done $(( $(date +%s) - start ))s"; tail -5 "$OUT/h2.log"; tail -30 "$OUT/h1-1.log"
