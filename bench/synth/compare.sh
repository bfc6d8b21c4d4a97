#!/usr/bin/env bash
# Times the real `cdk synth`, alternating: this checkout with the engines' reports kept between
# synths (mlstack/guard.py, mlstack/kept_reports.py; the first run fills the cache), this checkout
# running every engine every time (`-c policy_cache_dir=`), another checkout's sources run with
# this venv (BASE, e.g. main exported with `git archive main | tar -x -C /tmp/base`; its own
# cache setting), and the one-bucket app.
#   BASE=/tmp/base RUNS=3 bench/synth/compare.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
here=$PWD
source bench/synth/offline.sh
cdk="$here/node_modules/.bin/cdk --no-notices synth --quiet"
out=$(mktemp -d)
timed() {  # label, directory, cdk arguments...
  local label=$1 dir=$2; shift 2
  (cd "$dir" && /usr/bin/time -f "$label: %e s wall, %U s user + %S s sys" $cdk "$@" >/dev/null 2>"$out/err") \
    || { cat "$out/err"; exit 1; }
  tail -1 "$out/err"
}
for i in $(seq "${RUNS:-3}"); do
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
  timed "whole app, reports kept        run $i" "$here" --output "$out/kept"
  timed "whole app, engines every time  run $i" "$here" -c policy_cache_dir= --output "$out/every"
  timed "whole app, BASE                run $i" "${BASE:?}" --app "$here/.venv/bin/python app.py" \
    --output "$out/base"
  timed "one bucket                     run $i" "$here" \
    --app ".venv/bin/python bench/synth/one_bucket_app.py" --output "$out/one"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$out"
