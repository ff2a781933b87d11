#!/usr/bin/env bash
# Quick start: installs ffmpeg if it is missing, builds Starling and runs it
# on its defaults (data in ./data, web on :8080, RTMP on :1935). Arguments
# go to starling: build/run.sh --http :9000
set -euo pipefail
cd "$(dirname "$0")/.."
build/deps.sh run
go build -o starling .
exec ./starling "$@"
