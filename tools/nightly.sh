#!/usr/bin/env bash
# One night of the suite, on any GPU box or cluster login node (the GitHub workflow
# .github/workflows/nightly.yml only calls this):
#   bash tools/nightly.sh
# sets up (bash tools/setup.sh), runs every hypothesis at the paper profile with -n auto, compares with
# the last completed night (--baseline, where the plugin has it), writes a Markdown summary, and exits
# with pytest's status.
#
# Everything that outlives a night lives in NIGHTLY_HOME (default $HOME/advhyp-nightly):
#   cache/                  finished runs and decoded data (--cache-dir): a night trains only what changed
#   data/                   torchvision's dataset folder (ADVHYP_DATA_DIR, unless set)
#   reports/<night>/        one folder per night: pytest's reports/<timestamp>/ (index.html, results.json),
#                           pytest.log (the console) and summary.md
#   last/results.json       the last night that finished (not interrupted, pytest exit 0 or 1): the baseline
#   night.lock              two nights on one NIGHTLY_HOME never overlap
# Environment:
#   ADVHYP_PROFILE          default paper (smoke for a CPU check)
#   ADVHYP_DATA_SOURCES     NAME=PATH;NAME=PATH datasets (read by the plugin), e.g. cifar10=/data/cifar10.zip
#   NIGHTLY_WORKERS         pytest-xdist's -n (default auto: three workers per GPU, else one per CPU)
#   NIGHTLY_PYTEST_ARGS     extra pytest arguments, split on spaces (e.g. "-k pooling --seeds 0,1 --epochs 1")
#   NIGHTLY_REPORT          this night's folder (default NIGHTLY_HOME/reports/<date-time>)
#   NIGHTLY_PYTHON          an interpreter already set up for the suite: skips tools/setup.sh
#   GITHUB_STEP_SUMMARY     where GitHub Actions shows a summary: the Markdown is appended there too
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

home="${NIGHTLY_HOME:-$HOME/advhyp-nightly}"
night="${NIGHTLY_REPORT:-$home/reports/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$home/cache" "$home/data" "$home/last" "$night" || exit 1
export ADVHYP_DATA_DIR="${ADVHYP_DATA_DIR:-$home/data}"

exec 9>"$home/night.lock"
if command -v flock >/dev/null && ! flock -n 9; then
  echo "nightly: another night holds $home/night.lock; not starting a second one" >&2
  exit 1
fi

if [ -n "${NIGHTLY_PYTHON:-}" ]; then
  py="$NIGHTLY_PYTHON"
else
  bash tools/setup.sh || { echo "nightly: tools/setup.sh failed" >&2; exit 1; }
  py=.venv/bin/python
fi

read -r -a extra <<< "${NIGHTLY_PYTEST_ARGS:-}"
args=(hypotheses/ -n "${NIGHTLY_WORKERS:-auto}" --profile "${ADVHYP_PROFILE:-paper}"
      --cache-dir "$home/cache" --reports-dir "$night" "${extra[@]}")
baseline="$home/last/results.json"
if [ -f "$baseline" ]; then
  # --baseline is new in the plugin: passed only where this checkout's plugin accepts it.
  # (help read whole first: `grep -q` closing the pipe early would fail pytest with SIGPIPE under pipefail)
  if help=$("$py" -m pytest --help 2>/dev/null) && grep -q -e '--baseline' <<< "$help"; then
    args+=(--baseline "$baseline")
  else
    echo "nightly: this checkout's pytest has no --baseline option; not comparing with $baseline" >&2
  fi
fi

echo "nightly: $py -m pytest ${args[*]}"
start=$SECONDS
"$py" -m pytest "${args[@]}" 2>&1 | tee "$night/pytest.log"
status=${PIPESTATUS[0]}
wall=$((SECONDS - start))

# pytest writes its report into a new <timestamp>/ folder inside the night's folder.
found=("$night"/*/results.json)  # sorted by name: the newest last
results=""
[ -f "${found[-1]}" ] && results="${found[-1]}"
if [ -n "$results" ]; then
  "$py" -m harness.report.summary "$results" --wall-seconds "$wall" > "$night/summary.md" \
    || echo "nightly: no summary for $results" >> "$night/summary.md"
else
  printf '## advhyp: no results\n\npytest exited %s after %s s without writing results.json; see %s.\n' \
    "$status" "$wall" "$night/pytest.log" > "$night/summary.md"
fi
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$night/summary.md" >> "$GITHUB_STEP_SUMMARY"
echo "nightly: pytest exit status $status after $wall s; summary in $night/summary.md"

# The baseline moves only after a night that finished: tests ran (exit 0, or 1 for failed tests, which a
# contradicted claim or a changed verdict gives) and results.json is not marked partial.
if [ -n "$results" ] && { [ "$status" = 0 ] || [ "$status" = 1 ]; } &&
   "$py" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["partial"] is not False)' "$results"; then
  cp "$results" "$home/last/results.json.tmp" && mv "$home/last/results.json.tmp" "$home/last/results.json" \
    && echo "nightly: baseline for the next night: $home/last/results.json"
fi
exit "$status"
