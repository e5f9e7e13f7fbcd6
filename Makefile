# The two commands of the README, and the rest. Every target runs `setup` first, which
# installs what is missing and skips what is there.
CARGO ?= cargo
# One profile for everything: tests, the demo and benchmarks share one build.
PROFILE_FLAG = --release
WOLF = target/release/wolf

.PHONY: setup browser venv build demo test bench lint

setup:
	@tools/setup.sh

# Setup plus Debian's Chromium and ChromeDriver (the leaderboard's browser test).
browser:
	@tools/setup.sh --browser

# The Python environment of the tests and benchmarks (a real OpenAI-compatible server).
venv: setup
	@tools/setup_venv.sh

# The product: the `wolf` binary alone (the bench crate's `test-support` stays out of it).
build: setup
	$(CARGO) build $(PROFILE_FLAG) -p wolf

demo: build
	$(WOLF) demo

test: browser venv
	$(CARGO) test $(PROFILE_FLAG) --workspace

bench: build venv
	$(CARGO) build $(PROFILE_FLAG) -p wolf-bench
	target/release/wolf-bench --out bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(PROFILE_FLAG) --workspace --all-targets -- -D warnings
	$(CARGO) check $(PROFILE_FLAG) --workspace --exclude wolf-bench --no-default-features
