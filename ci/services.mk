# Virtual environments for the local stand-ins of external services (filled in by the services work).
.PHONY: services-venvs
services-venvs:
	@true
