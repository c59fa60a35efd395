"""Local stand-ins for external services (test harness only)."""
