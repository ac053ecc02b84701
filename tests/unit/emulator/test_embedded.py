"""Commands without ``up`` share one embedded emulator: one bucket, not a copy each, and it goes
away when the last of them is done."""

from __future__ import annotations

import time
from pathlib import Path

from local_mlops.config import load_settings
from local_mlops.devenv.emulator import EmbeddedEmulator, is_reachable
from local_mlops.s3 import s3_client


def test_concurrent_commands_share_one_embedded_emulator(tmp_path: Path) -> None:
    settings = load_settings(
        {"state_dir": str(tmp_path), "bucket": "shared"},
        config_file=Path(__file__).parents[2] / "data" / "empty.toml",
    )
    first, second = EmbeddedEmulator(settings, "127.0.0.1"), EmbeddedEmulator(settings, "127.0.0.1")
    url = first.start()
    assert second.start() == url and first.started and not second.started
    s3_client(settings, url).put_object(Bucket="shared", Key="from-second", Body=b"x")

    first.stop()
    time.sleep(2)
    assert is_reachable(url)  # the second command still uses it
    second.stop()
    deadline = time.monotonic() + 10
    while is_reachable(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not is_reachable(url)

    third = EmbeddedEmulator(settings, "127.0.0.1")
    try:
        again = third.start()
        assert third.started
        body = s3_client(settings, again).get_object(Bucket="shared", Key="from-second")["Body"]
        assert body.read() == b"x"
    finally:
        third.stop()
