# `make test` runs every test, as CI (CI=true) does: a missing prerequisite (hauser's fixtures,
# the C scanner) fails with a one-line reason instead of skipping (tests/conftest.py).
test: export TAP_FULLSTORY_REQUIRE_ALL := 1
