#!/usr/bin/env bash
# Installs every test dependency, then runs all checks and tests: gofmt,
# go vet, staticcheck, the web bundle's freshness, go test -race, and a
# short run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
build/deps.sh test
export PATH="$PWD/.bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "go mod download"
go mod download

step gofmt
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './build/web/node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "Not gofmt-ed (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

step staticcheck
staticcheck ./...

step "web bundle is built from its sources"
(cd build/web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm test --silent && npm run --silent build >/dev/null)
if git rev-parse --git-dir >/dev/null 2>&1; then
	if [ -n "$(git status --porcelain -- static/web static/panel)" ]; then
		git status --short -- static/web static/panel >&2
		echo "static/web or static/panel is stale: run make web and commit it with its sources." >&2
		exit 1
	fi
else
	echo "(not a git checkout: cannot compare the bundle with the committed one)"
fi

step "go test -race"
# One package at a time (-p 1): the root package's headless Chromium
# viewers and the pipeline's ffmpeg runs must not share two cores with
# each other, or the browsers stall for want of CPU, not for a bug.
STARLING_REQUIRE_TOOLS=1 go test -race -count=1 -p 1 -timeout 40m ./...

step "fuzz targets, 5000 inputs each"
# go test -race above ran their seeds and testdata/fuzz corpora; this
# explores a little (make fuzz explores for minutes). go test -fuzz takes
# one package and one target, with a build of its own. Both budgets are
# counts, so that a busy machine tests as much, only slower: the default
# minimizing budget of 60 s halts fuzzing for up to a minute whenever an
# input finds new code, since minimizing re-runs the target for each
# shorter candidate, and the tracker, chat and ingest targets run a
# server each time. An input that fails is saved under the package's
# testdata/fuzz: commit it with the fix.
grep -r --include='*_test.go' --exclude-dir=node_modules -o '^func Fuzz[A-Za-z0-9_]*([A-Za-z0-9_]* \*testing\.F)' . | sed 's/:func \(Fuzz[A-Za-z0-9_]*\).*/ \1/' | sort |
	while read -r file name; do
		echo "$name ($(dirname "$file"))"
		go test -run='^$' -fuzz="^$name\$" -fuzztime=5000x -fuzzminimizetime=20x "$(dirname "$file")"
	done
