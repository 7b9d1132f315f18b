"""The engine refuses use from another event loop or a forked child process."""

from __future__ import annotations

import asyncio
import os

import pytest

from poolbridge.errors import WrongEventLoop

from .fake import make_engine


def test_wrong_event_loop_is_detected() -> None:
    engine = make_engine(min_size=0)
    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:
        first.run_until_complete(engine.open())
        with pytest.raises(WrongEventLoop, match="another event loop"):
            second.run_until_complete(engine.getconn())
        first.run_until_complete(engine.close())
    finally:
        first.close()
        second.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_use_after_fork_is_detected() -> None:
    engine = make_engine(min_size=0)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(engine.open())
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: a new loop, the parent's pool
            code = 1
            try:
                asyncio.run(engine.getconn())
            except WrongEventLoop as exc:
                code = 0 if "os.fork()" in str(exc) else 2
            except BaseException:
                code = 3
            os.write(write_end, bytes([code]))
            os._exit(0)
        os.close(write_end)
        result = os.read(read_end, 1)
        os.waitpid(pid, 0)
        os.close(read_end)
        assert result == bytes([0])
        loop.run_until_complete(engine.close())
    finally:
        loop.close()
