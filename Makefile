.PHONY: run test build web bench bench-swarm load-tracker load-chat
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
bench-swarm: ## P2P offload and glass-to-glass latency for 2, 4 and 8 viewers
	go run ./build/bench/swarm -viewers 2,4,8 -window 60s -warmup 20s
load-tracker: ## 10,000 simulated viewers against the tracker
	go run ./build/load/tracker -peers 10000 -interval 10s -window 30s
load-chat: ## 5,000 chat clients, 20 messages a second for 60 s
	go run ./build/load/chat -clients 5000 -rate 20 -duration 60s
