# `make demo` (owned by the Meltano work).
.PHONY: demo
demo:
	@echo "demo not built yet" && false
