# `make bench-backfill` (issue #16): a 7-day backfill against an emulator whose exports take time to
# prepare, for the tap sequential (max_pending_exports=1), the tap pipelined (the default) and hauser
# (built from ../shared/peers/hauser with its build.sh into a temporary directory). Writes
# bench/out/backfill.json and prints a table. BACKFILL_ARGS passes options to bench/backfill.py,
# e.g. `make bench-backfill BACKFILL_ARGS="--prepare 20 --no-hauser"`.
BACKFILL_ARGS ?=

.PHONY: bench-backfill

bench-backfill: venv
	$(BIN)/python bench/backfill.py $(BACKFILL_ARGS)
