pytest_plugins = ["tap_fullstory.testing.fixtures", "tests.services"]
