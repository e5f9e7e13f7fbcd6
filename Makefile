# The two commands of the README, and the rest. Every target runs `setup` first, which
# installs what is missing and skips what is there.
CARGO ?= cargo
# One profile for everything: tests, the demo and benchmarks share one build.
PROFILE_FLAG = --release
WOLF = target/release/wolf

.PHONY: setup browser llama-server venv build demo test bench lint recaption-demo

setup:
	@tools/setup.sh

# Setup plus what only the tests use: Chromium and ChromeDriver (the leaderboard's browser
# test), a one-node Slurm (the job array's test) and .wolf/testenv (kubernetes-validate).
browser:
	@tools/setup.sh --browser

# llama.cpp's own OpenAI-compatible server: the tests' real third-party server and the
# anchor of the batching bench (built once per machine, about 5 minutes).
llama-server: setup
	@tools/setup_llama_server.sh

# The Python environment of the benchmarks' anchors (llama-cpp-python, openai,
# onnxruntime, pycocoevalcap).
venv: setup
	@tools/setup_venv.sh

# The product: the `wolf` binary alone (the bench crate's `test-support` stays out of it).
build: setup
	$(CARGO) build $(PROFILE_FLAG) -p wolf

demo: build
	$(WOLF) demo

test: browser llama-server
	$(CARGO) test $(PROFILE_FLAG) --workspace

bench: build venv llama-server
	$(CARGO) build $(PROFILE_FLAG) -p wolf-bench
	target/release/wolf-bench --out bench

# VILA²'s loop in the closed world (issue 23): three arms of `wolf recaption loop` whose
# trainer really fine-tunes the captioner; needs the dev environment (torch, about
# 5.7 GB, installed when missing) and about 20 minutes on 2 cores; appends its table to
# bench/results.md. Not part of `make test`.
recaption-demo: build
	tools/recaption_demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(PROFILE_FLAG) --workspace --all-targets -- -D warnings
	$(CARGO) check $(PROFILE_FLAG) --workspace --exclude wolf-bench --no-default-features
