#!/usr/bin/env bash
# Installs what Starling needs on Debian or Ubuntu, skipping what is there.
#   build/deps.sh run    ffmpeg, for the server
#   build/deps.sh test   also Chromium (browser tests), Node.js and npm (web
#                        build check), and into ./.bin staticcheck and
#                        versitygw (the S3 server storage/s3's tests run)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
case "$mode" in run|test) ;; *) echo "usage: $0 run|test" >&2; exit 2 ;; esac

need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
if [ "$mode" = test ]; then
	command -v chromium >/dev/null || need+=(chromium)
	command -v node >/dev/null || need+=(nodejs)
	command -v npm >/dev/null || need+=(npm)
fi

if [ ${#need[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null; then
		echo "Please install: ${need[*]} (this script knows apt-get only)." >&2
		exit 1
	fi
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { echo "Installing ${need[*]} needs root: run as root or install sudo." >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "Installing ${need[*]} with apt-get..."
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ "$mode" = test ] && ! [ -x .bin/staticcheck ]; then
	echo "Installing staticcheck..."
	GOBIN="$PWD/.bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

# A real S3 server for storage/s3/s3test; about 1-3 minutes to build the
# first time.
if [ "$mode" = test ] && ! [ -x .bin/versitygw ]; then
	echo "Installing versitygw..."
	GOBIN="$PWD/.bin" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
