#!/usr/bin/env bash
# Times the real `cdk synth` of the whole app with every report kept against the same with the
# built-in CloudFormation validation's template reports missed (deleted; its version and rule
# IDs kept, the other engines' reports kept): what the first synth after a change pays.
#   RUNS=2 bench/synth/validation_miss.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/synth/offline.sh
out=$(mktemp -d)
cache="$out/cache"
cdk="node_modules/.bin/cdk --no-notices synth --quiet -c policy_cache_dir=$cache --output $out/app"
$cdk >/dev/null 2>"$out/err" || { cat "$out/err"; exit 1; }  # fills the cache
for i in $(seq "${RUNS:-2}"); do
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "every report kept          run $i: %e s wall, %U s user + %S s sys" \
    $cdk >/dev/null 2>"$out/err" || { cat "$out/err"; exit 1; }
  tail -1 "$out/err"
  # The validation's template reports (every kept file but the one with its version).
  grep -L '"version"' "$cache"/cloudformation-validate/*.json | xargs rm -f
  /usr/bin/time -f "validation reports missed  run $i: %e s wall, %U s user + %S s sys" \
    $cdk >/dev/null 2>"$out/err" || { cat "$out/err"; exit 1; }
  tail -1 "$out/err"
done
rm -rf "$out"
