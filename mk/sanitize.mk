# The C scanner (tap_fullstory/csrc) under AddressSanitizer + UndefinedBehaviorSanitizer (issue #13).
# Included by the top-level Makefile. Each build goes to its own folder under build/ (git-ignored); the
# normal in-place build is never replaced: the tests load the other build through
# tests/fuzz/use_build.py (TAP_FULLSTORY_COLUMNS_SO).
#
#   make sanitize  gcc ASan+UBSan build; runs the scanner's tests on it (tests/test_native*.py: the
#                  wrapper tests, the hostile-input regressions, the corpus replay). Fails on any test
#                  failure or sanitizer report (reports go to build/sanitize/report.*).
#   make fuzz      clang build with libFuzzer coverage; atheris runs the differential harness
#                  (tests/fuzz/harness.py) from the committed seeds and regressions for FUZZ_SECONDS
#                  seconds or FUZZ_RUNS inputs, whichever comes first. Needs clang and atheris: installs
#                  them (Debian's clang with apt-get, as root; atheris==3.0.0 into .venv, built with it).
#                  Inputs it finds go to build/fuzz/corpus; a failing one to build/fuzz/crash-*.
#                  Preloaded: atheris's ASan+libFuzzer runtime (so that the C's coverage reaches libFuzzer)
#                  and its custom-mutator module (libFuzzer looks for LLVMFuzzerCustomMutator when it is
#                  loaded, before Python runs: without it tests/fuzz/mutate.py would never be called).

SAN_DIR := build/sanitize
FUZZ_DIR := build/fuzz
CSRC := $(wildcard tap_fullstory/csrc/*)
SAN_COMMON := -std=c11 -Wall -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all -shared -fPIC
PY_INCLUDE = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
SAN_TESTS ?= tests/test_native.py tests/test_native_hostile.py tests/test_native_corpus.py
# Sanitizer settings; reports go to files in the folder $(1), counted after the run.
san_env = ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(abspath $(1))/report \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(abspath $(1))/report
FUZZ_SECONDS ?= 300
FUZZ_RUNS ?= -1
FUZZ_ARGS ?=
ATHERIS_STAMP := $(VENV)/.atheris

.PHONY: sanitize fuzz fuzz-tools

# `make test` runs the sanitizer pass too (43-112 s on 2 shared cores), before ruff and pytest.
test: sanitize

# The extension on its own (one translation unit): no setuptools, exactly these flags.
$(SAN_DIR)/_columns.so: $(CSRC) | $(STAMP)
	@mkdir -p $(@D)
	gcc $(SAN_COMMON) -fsanitize=address,undefined -I$(PY_INCLUDE) tap_fullstory/csrc/columns.c -o $@

# pytest --capture=sys: a report the sanitizer writes to stderr (UBSan aborting inside a test) reaches the log
# instead of dying in pytest's captured file descriptor (found when such an abort left only "Error 1").
sanitize: $(SAN_DIR)/_columns.so
	@[ -f "$$(gcc -print-file-name=libasan.so)" ] || { echo "libasan missing (Debian: libasan8)" >&2; exit 1; }
	@rm -f $(SAN_DIR)/report.*
	@start=$$(date +%s); \
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) PYTHONMALLOC=malloc $(call san_env,$(SAN_DIR)) \
	  TAP_FULLSTORY_COLUMNS_SO=$(SAN_DIR)/_columns.so \
	  $(BIN)/python -m pytest -p tests.fuzz.use_build -p no:cacheprovider -q --capture=sys $(SAN_TESTS); status=$$?; \
	reports=$$(ls $(SAN_DIR)/report.* 2>/dev/null | wc -l); \
	if [ "$$reports" != 0 ]; then cat $(SAN_DIR)/report.*; fi; \
	echo "[sanitize] $$(( $$(date +%s) - start )) s; sanitizer reports: $$reports"; \
	[ "$$status" = 0 ] && [ "$$reports" = 0 ]

# Debian's clang (clang-14 ships libFuzzer), and atheris built with it.
fuzz-tools: $(ATHERIS_STAMP)

$(ATHERIS_STAMP): | $(STAMP)
	@if ! command -v clang >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "clang missing; run as root: apt-get install clang" >&2; exit 1; fi; \
	  echo "[fuzz] installing clang (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; \
	fi
	CC=clang CXX=clang++ $(BIN)/pip install -q "atheris==3.0.0"
	touch $@

$(FUZZ_DIR)/_columns.so: $(CSRC) | $(ATHERIS_STAMP)
	@mkdir -p $(@D)
	clang $(SAN_COMMON) -fsanitize=address,undefined,fuzzer-no-link -I$(PY_INCLUDE) \
	  tap_fullstory/csrc/columns.c -o $@

fuzz: $(FUZZ_DIR)/_columns.so
	@mkdir -p $(FUZZ_DIR)/corpus
	@rm -f $(FUZZ_DIR)/crash-* $(FUZZ_DIR)/summary.json $(FUZZ_DIR)/report.*
	@start=$$(date +%s); \
	lib=$$($(BIN)/python -c 'import atheris; print(atheris.path())'); \
	LD_PRELOAD="$$lib/asan_with_fuzzer.so $$(ls $$lib/atheris/custom_mutator.*.so)" \
	  $(call san_env,$(FUZZ_DIR)) TAP_FULLSTORY_COLUMNS_SO=$(FUZZ_DIR)/_columns.so \
	  FUZZ_SUMMARY=$(FUZZ_DIR)/summary.json \
	  $(BIN)/python tests/fuzz/fuzz_scanner.py -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
	  -max_len=16384 -rss_limit_mb=4096 -dict=tests/fuzz/json.dict -artifact_prefix=$(FUZZ_DIR)/ \
	  -print_final_stats=1 $(FUZZ_ARGS) $(FUZZ_DIR)/corpus tests/fuzz/corpus tests/fuzz/regressions; \
	status=$$?; \
	reports=$$(ls $(FUZZ_DIR)/report.* 2>/dev/null | wc -l); \
	if [ "$$reports" != 0 ]; then cat $(FUZZ_DIR)/report.*; fi; \
	echo "[fuzz] $$(( $$(date +%s) - start )) s; sanitizer reports: $$reports; failing inputs:" \
	  "$$(ls $(FUZZ_DIR)/crash-* 2>/dev/null | wc -l); $$(cat $(FUZZ_DIR)/summary.json 2>/dev/null | tr -d '\n')"; \
	[ "$$status" = 0 ] && [ "$$reports" = 0 ]
