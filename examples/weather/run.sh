#!/bin/sh
# The weather example in one command: prepares eddy-data/weather/readings.jsonl from the pinned
# vega-datasets wheel when it is missing, then runs the pipeline. Arguments go to `eddy run`
# (for example --linger, to keep serving the forecasts after the year is replayed).
set -eu
cd "$(dirname "$0")/../.."
[ -f eddy-data/weather/readings.jsonl ] || python3 examples/weather/prepare.py
exec cargo run --release --quiet -- run examples/weather/pipeline.toml "$@"
