"""The emulator watchdog notices a dead endpoint within seconds, and only then."""

from __future__ import annotations

import socket
import threading
import time

from local_mlops.targets.localmode.watchdog import EmulatorWatchdog


def test_the_watchdog_fires_once_when_the_port_closes() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    lost = threading.Event()
    calls: list[float] = []

    def on_lost() -> None:
        calls.append(time.monotonic())
        lost.set()

    with EmulatorWatchdog(url, on_lost, interval=0.2) as watchdog:
        time.sleep(1.0)
        assert not watchdog.lost
        closed = time.monotonic()
        listener.close()
        assert lost.wait(timeout=5)
    assert watchdog.lost and len(calls) == 1 and calls[0] - closed < 2
