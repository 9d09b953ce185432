# One entry point for common tasks. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

help: ## List the targets.
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

quickstart: ## The main job on a fresh Debian 12 (root): lab DC + tenant + agent sync, with a visible result.
	scripts/quickstart.sh

test: ## The whole test suite, installing what it needs (Samba, Chromium) first.
	scripts/test.sh

ci: ## What CI runs: install, fmt --check, clippy -D warnings, the whole test suite.
	.ci/run

build: ## Debug build of the cloudsync binary.
	cargo build

release: ## Release build (target/release/cloudsync).
	cargo build --release

fmt: ## Format the code.
	cargo fmt --all

lint: ## fmt --check and clippy with warnings as errors.
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: ## Run every benchmark (ratios measured in one run; see README "Status and measured figures").
	cargo bench

lab-install: ## Install Samba AD DC from Debian's packages (services stay disabled).
	scripts/lab.sh install

lab-up: ## Provision (once), start and seed (once) a lab DC in .lab/dc on 127.0.0.1.
	[ -f .lab/dc/lab.env ] || LAB_IP=127.0.0.1 scripts/lab.sh provision .lab/dc
	scripts/lab.sh status .lab/dc >/dev/null 2>&1 || scripts/lab.sh start .lab/dc
	[ -f .lab/dc/.seeded ] || { scripts/lab.sh seed .lab/dc 200 && touch .lab/dc/.seeded; }

lab-down: ## Stop the lab DC in .lab/dc.
	scripts/lab.sh stop .lab/dc

.PHONY: help quickstart test ci build release fmt lint bench lab-install lab-up lab-down
