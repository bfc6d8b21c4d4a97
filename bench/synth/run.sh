#!/usr/bin/env bash
# Times the real `cdk synth` of the whole app against a one-bucket app, in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/synth/offline.sh
out=$(mktemp -d)
runs=${RUNS:-3}
for i in $(seq "$runs"); do
  echo "load average $(cut -d" " -f1-3 /proc/loadavg)"
  /usr/bin/time -f "whole app   run $i: %e s wall, %U s user + %S s sys" \
    npx --no-install cdk --no-notices synth --quiet --output "$out/app" >/dev/null 2>"$out/err" \
    || { cat "$out/err"; exit 1; }
  tail -1 "$out/err"
  /usr/bin/time -f "one bucket  run $i: %e s wall, %U s user + %S s sys" \
    npx --no-install cdk --no-notices synth --quiet --app ".venv/bin/python bench/synth/one_bucket_app.py" \
    --output "$out/one" >/dev/null 2>"$out/err" || { cat "$out/err"; exit 1; }
  tail -1 "$out/err"
done
rm -rf "$out"
