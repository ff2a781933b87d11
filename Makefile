.PHONY: run test build web bench
run:     ## install ffmpeg if missing and run on the defaults
	build/run.sh
test:    ## install test dependencies and run every check and test
	build/test.sh
build:   ## build the starling binary
	go build -o starling .
web:     ## rebuild the viewer page into static/web (commit it with its sources)
	cd build/web && npm ci --ignore-scripts --no-audit --no-fund && npm run build
bench:   ## measure time to first segment, CPU and memory (see docs/benchmarks.md)
	go run ./build/bench/pipeline
