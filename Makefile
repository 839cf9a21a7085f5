# The README's two commands are `make quickstart` and `make test`.
# Everything they need is installed by scripts/deps.sh and built by
# scripts/testenv.sh (cached outside the repository).

BUILD_DIR ?= build
SANITIZE ?= ON
PYTEST_ARGS ?=

.PHONY: all deps build controlplane unit e2e test quickstart clean

all: build

deps:
	scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DACRPOOL_SANITIZE=$(SANITIZE) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR)

controlplane: deps
	scripts/testenv.sh build

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure

# Two pytest runs: each suite has its own conftest.py, and pytest cannot
# hold two top-level conftest modules of the same name in one process.
# Helm (for tests/e2e/test_chart.py) is built from the Go module proxy into
# the cache, once per version.
e2e: build controlplane
	scripts/helm.sh build >/dev/null
	scripts/pytest.sh -q $(PYTEST_ARGS) tests/emulator/tests
	ACRPOOL_BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/pytest.sh -q $(PYTEST_ARGS) tests/e2e
	scripts/pytest.sh -q $(PYTEST_ARGS) tests/agents
	scripts/pytest.sh -q $(PYTEST_ARGS) tests/monitoring

test: unit e2e fuzz faults valgrind

quickstart: build controlplane
	scripts/quickstart.sh

clean:
	rm -rf $(BUILD_DIR)

# Fuzz the parsers (tests/fuzz/README.md): clang-14 with libFuzzer, ASan and
# UBSan in its own build directory; every target runs FUZZ_TIME seconds over
# a temporary copy of its seed corpus, and any crash fails the target.
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_TIME ?= 20

.PHONY: fuzz
fuzz: deps
	CC=clang-14 cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DACRPOOL_FUZZ=ON -DACRPOOL_TESTS=OFF -DCMAKE_C_FLAGS="-O1 -g"
	cmake --build $(FUZZ_BUILD_DIR)
	tests/fuzz/run.sh $(FUZZ_BUILD_DIR) $(FUZZ_TIME)

# Issue 9. Fault suite (tests/faults, docs/faults.md): a rollout of 200
# AgentPools with the operator killed, the API server restarted, etcd
# compacted, Azure throttling, failing, dropping connections, slow, tokens
# expiring, and a leader failover; each case must converge with nothing
# lost or duplicated. Same sanitized build as the e2e suite.
.PHONY: faults valgrind bench
faults: build controlplane
	ACRPOOL_BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/pytest.sh -q -p no:cacheprovider $(PYTEST_ARGS) tests/faults

# The e2e happy path (create, scale, delete one pool) with the operator
# under valgrind --leak-check=full, from a build without sanitizers.
VALGRIND_BUILD_DIR ?= build-valgrind
valgrind: deps controlplane
	cmake -S . -B $(VALGRIND_BUILD_DIR) -G Ninja -DACRPOOL_SANITIZE=OFF -DACRPOOL_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(VALGRIND_BUILD_DIR)
	ACRPOOL_BUILD_DIR=$(abspath $(VALGRIND_BUILD_DIR)) scripts/pytest.sh -q -s -p no:cacheprovider $(PYTEST_ARGS) tests/valgrind

# Scale benchmark (BENCHMARKS.md): our operator, from a Release build
# without sanitizers, next to the controller-runtime peer (bench/peer, Go,
# built by scripts/peer.sh into the cache outside the repository), on one
# API server; BENCH_POOLS is a space-separated list of pool counts. Then
# the operator's memory per cached object, per kind (bench/memory.py: N
# AgentPools, then N Tasks, then N TaskRuns, at the same N; about a minute
# at 100), and what PipelineAgentPools cost ARM, Azure DevOps and the API
# server per instance (bench/pipelineagents.py, 5 pools of 4, about a
# minute).
BENCH_BUILD_DIR ?= build-bench
BENCH_POOLS ?= 100 1000
bench: deps controlplane
	cmake -S . -B $(BENCH_BUILD_DIR) -G Ninja -DACRPOOL_SANITIZE=OFF -DACRPOOL_TESTS=OFF -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD_DIR)
	scripts/peer.sh build >/dev/null
	ACRPOOL_BUILD_DIR=$(abspath $(BENCH_BUILD_DIR)) python3 bench/scale.py $(BENCH_POOLS)
	ACRPOOL_BUILD_DIR=$(abspath $(BENCH_BUILD_DIR)) python3 bench/memory.py $(BENCH_POOLS)
	ACRPOOL_BUILD_DIR=$(abspath $(BENCH_BUILD_DIR)) python3 bench/pipelineagents.py
