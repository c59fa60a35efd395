"""The Singer SDK's standard tap tests, against the local FullStory emulator, with both streams.

`individuals` is opt-in (not selected by default), so the tests get a catalog selecting every
stream, as a user selecting both would."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_fullstory.tap import TapFullStory
from tap_fullstory.testing import Emulator

_EMULATOR = Emulator(api_key="sdk-key", seed=7, start="2024-01-01T00:00:00Z", days=1, events_per_hour=20).start()
atexit.register(_EMULATOR.stop)

SAMPLE_CONFIG = {
    "api_key": "sdk-key",
    "api_url": _EMULATOR.base_url,
    "start_date": "2024-01-01T00:00:00Z",
    "end_date": "2024-01-02T00:00:00Z",
    "export_window": "6h",
    "poll_interval": 0.01,
}


def _all_selected() -> dict:
    catalog = TapFullStory(config=SAMPLE_CONFIG, parse_env_config=False).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
    return catalog


CATALOG = _all_selected()
assert sorted(s["tap_stream_id"] for s in CATALOG["streams"]) == ["events", "individuals"]

TestTapFullStory = get_tap_test_class(
    tap_class=TapFullStory,
    config=SAMPLE_CONFIG,
    catalog=CATALOG,
    parse_env_config=False,
    suite_config=SuiteConfig(max_records_limit=100),
)
