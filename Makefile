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
e2e: build controlplane
	scripts/pytest.sh -q $(PYTEST_ARGS) tests/emulator/tests
	ACRPOOL_BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/pytest.sh -q $(PYTEST_ARGS) tests/e2e

test: unit e2e fuzz

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
