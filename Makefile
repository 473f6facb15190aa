# Stable entry points. `make test` and `make demo` work on a fresh machine:
# they install what is missing (a Python venv for moto_server and cfn-lint)
# and start the local services themselves.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export AWS_EC2_METADATA_DISABLED := true
export MOTO_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: test demo demo-large demo-fleet bench-monitor lint fmt bench bench-redact bench-hostile venv clean-venv sam-validate package package-smoke

## test: every unit and integration test (moto_server is started by the harness)
test: $(STAMP)
	cargo test --workspace

## lint: formatting, clippy and the CloudFormation template
lint: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

fmt:
	cargo fmt --all

## demo: an example tenant's conversations become a completed fine-tuning run
## (PROVIDER=bedrock: on the Bedrock adapter, moto's Bedrock; PROVIDER=together:
## on the Together adapter, the sandbox's Together mode)
PROVIDER ?= openai
demo: $(STAMP)
	PROVIDER=$(PROVIDER) cargo run --quiet -p demo --bin demo

## demo-large: a large tenant's run prepared by shards over the shard queue
## (S3 notifications to SQS at moto, four shard workers), merged in S3, and
## checked byte for byte against a one-pass preparation of the same exports
demo-large: $(STAMP)
	cargo run --quiet -p demo --bin demo-large

## demo-fleet: 50 small tenants x 3 runs and one large tenant's 100, on
## OpenAI (sandbox) and Bedrock (moto), through pools of 2 slots each, with
## a stretch of 429s and a Bedrock quota cut in the middle; the last line
## is one JSON object (runs, completed, failed, the most any pool held, the
## fair-share rank of the small tenants' first runs). FLEET_TENANTS,
## FLEET_RUNS_EACH, FLEET_BIG_RUNS, FLEET_POOL_BUDGET make it smaller.
demo-fleet: $(STAMP)
	cargo run --quiet -p demo --bin demo-fleet

## bench-monitor: monitor ticks over 10,000 runs (a third training, a
## third waiting, a third evaluating) with the sandbox at 50 ms a call:
## every job due, nothing due, the steady state (a tenth due); wall time,
## DynamoDB requests, items and read units, provider calls
bench-monitor: $(STAMP)
	cargo run --quiet --release -p demo --bin monitor-bench $(or $(RUNS),10000) 50 16

## bench: per function, release binary size, init time (process start to the
## first Runtime API `next`) and first response, beside a hello-world function
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
FUNCTION_BINS := --bin start-run --bin job-status --bin cancel --bin monitor --bin prepare --bin prepare-shard --bin evaluate --bin models --bin webhook --bin hello-lambda
bench: $(STAMP)
	cargo build --release --workspace $(FUNCTION_BINS)
	cargo build --workspace --bin bench-init
	$(TARGET_DIR)/debug/bench-init $(TARGET_DIR)/release $(or $(RUNS),10)

## bench-redact: redaction throughput (MB/s) and accuracy (planted PII
## missed, false positives) before and after Unicode-aware detection, on
## the demo and synthetic corpora and their hostile rewrites. The
## profiling profile: release code at the functions' opt-level, without
## the fat LTO that makes a release build of the demo crate slow
bench-redact:
	cargo run --profile profiling --quiet -p demo --bin redact-bench

## bench-hostile: peak RSS of `finetune prepare`'s reading path on a 1 MB
## gzip that inflates to 1 GiB of spaces with no newline (with its limits,
## and without: the line ceiling alone) and on a file of one 64 MiB line;
## each case in its own process (baseline: the good file alone), each
## must stay at or under 150 MiB
bench-hostile:
	cargo build --quiet -p demo --bin hostile-bench
	@for case in baseline gzip gzip-unbounded line; do $(TARGET_DIR)/debug/hostile-bench $$case || exit 1; done

## sam-validate: `sam validate --lint` (the SAM CLI in its own venv, .venv-sam)
SAM_VENV := .venv-sam
sam-validate: $(SAM_VENV)/.installed
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint -t template.yaml

## package: `sam build` of the nine functions (ARCH=arm64, the default, or
## x86_64) with the pinned SAM CLI, cargo-lambda and zig of .venv-sam, then
## checks the result (tools/package/check.py: architecture, 8 MiB budget,
## binaries, the dictionaries layer), then starts two of the built functions
## against a local Runtime API and moto (package-smoke). An arm64 build on
## an x86_64 machine runs under qemu-user, installed with apt-get when it
## is missing. The release build has its own target directory
## (SAM_TARGET_DIR): its profile and its zig-linked build scripts share
## nothing with the tests' dev build.
ARCH ?= arm64
SAM_TARGET_DIR ?= $(HOME)/.cache/finetune-sam-target
HOST_ARCH := $(subst aarch64,arm64,$(shell uname -m))
package: $(SAM_VENV)/.installed
	@case "$(ARCH)" in arm64|x86_64) ;; *) echo "ARCH must be arm64 or x86_64, not '$(ARCH)'" >&2; exit 2;; esac
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" CARGO_TARGET_DIR="$(SAM_TARGET_DIR)" SAM_CLI_TELEMETRY=0 \
		$(SAM_VENV)/bin/sam build --parameter-overrides Architecture=$(ARCH)
	$(SAM_VENV)/bin/python tools/package/check.py --arch $(ARCH)
ifeq ($(ARCH),$(HOST_ARCH))
	$(MAKE) --no-print-directory package-smoke RUNNER=
else ifeq ($(ARCH)-$(HOST_ARCH),arm64-x86_64)
	@command -v qemu-aarch64 >/dev/null && test -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 || \
		{ echo "installing qemu-user and the arm64 C library to run an arm64 bootstrap"; \
		  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user libc6-arm64-cross; }
	$(MAKE) --no-print-directory package-smoke RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
else
	@echo "package: $(ARCH) binaries are not started on this $(HOST_ARCH) machine (no smoke test)"
endif

## package-smoke: the built job-status and monitor answer an API Gateway
## event and a scheduled event (RUNNER: the command to start them under)
package-smoke: $(STAMP)
	cargo build --quiet -p bench-init --bin package-smoke
	$(TARGET_DIR)/debug/package-smoke .aws-sam/build $(RUNNER)

$(SAM_VENV)/.installed: requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	@touch $@

## contract-schemas: re-extract tests/contract/ (the providers' schemas the
## contract tests use) from their published documents, offline:
##   OPENAI_OPENAPI=<clone of openai/openai-openapi>   (work tree or bare git dir)
##   TOGETHER_OPENAPI=<clone of togethercomputer/openapi>
##   OPENAI_REV= / TOGETHER_REV= a commit to read (default HEAD; required
##   when the variable names the spec file itself rather than a clone)
## Bedrock comes from the botocore pinned in tools/contract/requirements.txt,
## or BOTOCORE_DATA=<a botocore package's data/ dir>. Sources not named are
## left as they are; tests/contract/SOURCES.json records what each came from.
.PHONY: contract-schemas
CONTRACT_VENV := .venv-contract
contract-schemas: $(CONTRACT_VENV)/.installed
	$(CONTRACT_VENV)/bin/python tools/contract/extract.py --out tests/contract \
	  $(if $(OPENAI_OPENAPI),--openai $(OPENAI_OPENAPI) $(if $(OPENAI_REV),--openai-rev $(OPENAI_REV))) \
	  $(if $(TOGETHER_OPENAPI),--together $(TOGETHER_OPENAPI) $(if $(TOGETHER_REV),--together-rev $(TOGETHER_REV))) \
	  $(if $(BOTOCORE_DATA),--botocore-data $(BOTOCORE_DATA),--botocore)

$(CONTRACT_VENV)/.installed: tools/contract/requirements.txt
	@test -x $(CONTRACT_VENV)/bin/python || python3 -m venv $(CONTRACT_VENV)
	$(CONTRACT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	@touch $@

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	@command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

clean-venv:
	rm -rf $(VENV) $(SAM_VENV)
