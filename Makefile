.PHONY: run test fuzz build web screenshots bench bench-swarm bench-s3 load-tracker load-chat load-rtmp load-fediverse
# FUZZTIME is how long make fuzz runs each target: a duration, or a count such as 10000x.
FUZZTIME ?= 2m
run:     ## install ffmpeg if missing and run on the defaults
	build/run.sh
test:    ## install test dependencies and run every check and test
	build/test.sh
# Go before 1.27 can fail a run whose -fuzztime duration ends in the
# middle of an input, with "context deadline exceeded" and no input saved
# (golang/go#75804): fuzz does not count that as a failure.
fuzz:    ## run every fuzz target for FUZZTIME (2m) each; an input that fails lands in testdata/fuzz: commit it with the fix
	@grep -r --include='*_test.go' --exclude-dir=node_modules -o '^func Fuzz[A-Za-z0-9_]*([A-Za-z0-9_]* \*testing\.F)' . | sed 's/:func \(Fuzz[A-Za-z0-9_]*\).*/ \1/' | sort | \
	while read -r file name; do \
		echo "== $$name ($$(dirname $$file)) for $(FUZZTIME)"; \
		log=$$(mktemp); \
		go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=20x "$$(dirname $$file)" 2>&1 | tee $$log; \
		if ! grep -q '^ok' $$log; then \
			if grep -q 'Failing input written' $$log || ! grep -qx '    context deadline exceeded' $$log; then rm -f $$log; exit 1; fi; \
			echo "(golang/go#75804: the time ran out mid-input; not a failure)"; \
		fi; \
		rm -f $$log; \
	done
build:   ## build the starling binary
	go build -o starling .
web:     ## rebuild the viewer page and the admin panel into static/web and static/panel (commit them with their sources)
	cd build/web && npm ci --ignore-scripts --no-audit --no-fund && npm run build
screenshots: ## retake docs/screenshots (the dashboard during a stream, the viewer page on a desktop and a phone)
	STARLING_SCREENSHOTS=$(CURDIR) go test -count=1 -timeout 15m -run TestAdminPanelDashboardAndSettings .
bench:   ## measure the first picture, time to first segment, CPU and memory (see docs/benchmarks.md)
	go run ./build/bench/pipeline
bench-swarm: ## P2P offload, glass-to-glass latency and its budget for 2, 4 and 8 viewers
	go run ./build/bench/swarm -viewers 2,4,8 -window 60s -warmup 20s
bench-s3: ## segment complete -> listed with an S3 bucket (versitygw), and tracker announces while the bucket is slow, before and after
	go run ./build/bench/s3
load-tracker: ## 10,000 simulated viewers against the tracker
	go run ./build/load/tracker -peers 10000 -interval 10s -window 30s
load-rtmp: ## strangers on the RTMP port: memory they make the server hold, lock-out, descriptors running out
	go run ./build/load/rtmp -conns 200
load-chat: ## 5,000 chat clients, 20 messages a second for 60 s
	go run ./build/load/chat -clients 5000 -rate 20 -duration 60s
load-fediverse: ## a post to 1,000 followers on 50 hosts, with shared inboxes and personal ones, 5 runs each
	go run ./build/load/fediverse -runs 5
