"""sdk.py's bookmark seam, exactly: after moving the bookmark the state is due to be written."""

from __future__ import annotations

from tap_fullstory import sdk
from tap_fullstory.tap import TapFullStory


def test_move_bookmark_marks_the_state_unwritten() -> None:
    stream = TapFullStory(config={"api_key": "k", "start_date": "2024-01-01T00:00:00Z"},
                          parse_env_config=False).streams["events"]
    stream.state_manager.is_flushed = True
    sdk.move_bookmark(stream, "2024-01-01T06:00:00Z", None)
    assert stream.state_manager.is_flushed is False
    assert stream.stream_state["replication_key_value"] == "2024-01-01T06:00:00Z"
