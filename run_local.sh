#!/usr/bin/env bash
# Runs augbeam locally. With no arguments: sets up .venv if needed and augments the sample
# photos in examples/photos into output/demo, then prints a summary. With arguments: passes
# them to `augbeam run` (for example: ./run_local.sh --input DIR --output OUT --copies 4).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/venv.sh
if [ "$#" -eq 0 ]; then
  set -- --input examples/photos --output output/demo --copies 4 --model mobilenet_v2 --overwrite
fi
exec augbeam run "$@"
