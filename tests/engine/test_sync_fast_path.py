"""The engine's synchronous checkout/checkin path: an idle checkout and a plain checkin run
no system call for the loop check (``asyncio.get_running_loop()`` calls ``getpid()`` on
every call), update stats inline, and still refuse another event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import poolbridge.engine.checkout as checkout
from poolbridge.errors import WrongEventLoop

from .fake import make_engine, opened

pytestmark = pytest.mark.asyncio


async def test_idle_checkout_and_checkin_do_not_ask_for_the_running_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        calls.append(1)
        return real()

    engine = make_engine()
    async with opened(engine):
        monkeypatch.setattr(checkout, "_get_running_loop", counting)
        for _ in range(50):
            async with engine.acquire():
                pass
            conn = await engine.getconn()
            await engine.putconn(conn)
        stats = engine.recorder.snapshot()
    assert calls == []
    assert stats["connection.count.used"] == 0
    assert stats["connection.wait_time"]["count"] == 100
    assert stats["connection.use_time"]["count"] == 100


async def test_another_loop_is_still_refused() -> None:
    engine = make_engine()
    async with opened(engine):
        got: list[BaseException] = []

        def other_thread() -> None:
            async def take() -> Any:
                return await engine.getconn()

            try:
                asyncio.run(take())
            except BaseException as exc:
                got.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        await asyncio.to_thread(t.join)
    assert len(got) == 1 and isinstance(got[0], WrongEventLoop), got
