# `make bench` (owned by the performance work).
.PHONY: bench
bench: venv
	@echo "bench not built yet" && false
