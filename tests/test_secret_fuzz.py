"""Secret fuzzing: whatever the password and the URL shape, no secret reaches a ConfigError, a
repr, ``config show``, a DEBUG log record or an exception chain.

Two properties, over every loader (argument, URL, environment, TOML) and every adapter's
native arguments (``config show --adapter all``):

- raw passwords of any printable characters (URL-significant ones included) put unencoded
  into the userinfo of URL shapes, malformed ones included (no scheme, no host, bad port,
  typo keys): the password carries three markers, and none may show up anywhere (a leaked
  piece of the password holds at least one of them unless it lies wholly between two). A
  password in a query value is put in encoded: unencoded, an '&' in it starts another
  parameter by the format's own definition;
- valid configs whose password (percent-encoded in the URL, in the query, in the
  ``password`` field, in ``driver_options``) is any printable text, a common word or a single
  character: every output is the same as for another password. That is what redaction by
  structure means: nothing printed depends on the secret's value, so a password such as
  ``postgres`` or ``1`` can neither leak nor mangle the output.

Bounded examples here; ``make soak`` runs the same properties much longer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolbridge
from poolbridge import ConfigError, PoolConfig, cli
from poolbridge.adapters.registry import adapter_names
from poolbridge.cli.config import adapter_report

MARKERS = ("Kq9w", "Vx7j", "Zj4p")
COMMON = ["postgres", "root", "test", "app", "mysql", "password", "127", "db", "1", "a", "*"]
URL_CHARS = list("/?#@:%&=+[] ;,'\"\\$!")
SCHEMES = ["postgresql", "postgresql+asyncpg", "postgres+psycopg", "mysql", "mysql+aiomysql"]

printable = st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Cf"))
pieces = st.text(alphabet=printable | st.sampled_from(URL_CHARS), max_size=6)
any_password = st.one_of(
    st.sampled_from(COMMON),
    st.text(alphabet=printable | st.sampled_from(URL_CHARS), min_size=1, max_size=12),
)

#: URL shapes with the password put in raw ({pw}); several do not parse on purpose
RAW_SHAPES = [
    "{scheme}://app:{pw}@127.0.0.1:5432/db",
    "{scheme}://app:{pw}@127.0.0.1:54x2/db",  # bad port
    "{scheme}://app:{pw}@/db",  # no host
    "{scheme}://app:{pw}@127.0.0.1/db?max_sise=5",  # typo of a pool option
    "{scheme}://app:{pw}@127.0.0.1/db?max_size=1&max_size=2",  # duplicate key
    "{scheme}://app:{pw}@127.0.0.1/db?sslmode=require&sslpassword={qpw}",
    "{scheme}://app:{pw}",  # no '@', no host
    "{scheme}//app:{pw}@127.0.0.1/db",  # no '://'
    "app:{pw}@127.0.0.1/db",  # no scheme
    "http://app:{pw}@127.0.0.1/db",  # unknown scheme
    "{scheme}://app:{pw}@127.0.0.1/db\n",  # trailing newline
]
#: URL shapes with the password percent-encoded: always valid
ENCODED_SHAPES = [
    "{scheme}://app:{qpw}@127.0.0.1:5432/db",
    "{scheme}://app@127.0.0.1/db?sslpassword={qpw}&sslmode=require",
    "{scheme}://app:{qpw}@127.0.0.1/db?api_token={qpw}&options={opw}",
]


class Records(logging.Handler):
    """Every log record at DEBUG and above, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def capture() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POOLBRIDGE_")}
    try:
        with mock.patch.dict(os.environ, clean, clear=True):
            yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def chain_text(exc: BaseException) -> str:
    """The error as printed (traceback included) plus every error in its chain."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur), repr(getattr(cur, "problems", ""))]
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def config_texts(config: PoolConfig, adapters: bool) -> list[str]:
    out = [
        repr(config),
        str(config),
        f"{config}",
        repr(config.database_url),
        json.dumps(config.to_dict(redact=True), default=str),
    ]
    for name in adapter_names() if adapters else ():  # `config show --adapter all` data
        out.append(json.dumps(adapter_report(name, config), default=str, sort_keys=True))
    return out


def attempt(build: Callable[[], PoolConfig], adapters: bool = False) -> list[str]:
    """Texts produced by building a config: its displays, or the error and its chain."""
    try:
        config = build()
    except ConfigError as exc:
        return [chain_text(exc)]
    return config_texts(config, adapters)


def cli_show(url: str | None, toml: Path, *extra: str) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["config", "show", "--config", str(toml), "--adapter", "all", *extra]
    if url is not None:
        argv += ["--url", url]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        cli.main(argv)
    return [out.getvalue(), err.getvalue()]


def toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string of printable text is TOML


def every_output(url: str, password: str | None, workdir: Path) -> list[str]:
    """Outputs of every loader and `config show` for one URL (and password field)."""
    toml = workdir / "poolbridge.toml"
    lines = [f"url = {toml_string(url)}"]
    env = {"POOLBRIDGE_URL": url}
    fields: dict[str, Any] = {}
    if password is not None:
        lines.append(f"password = {toml_string(password)}")
        env["POOLBRIDGE_PASSWORD"] = password
        fields["password"] = password
        fields["driver_options"] = {"ssl": {"passphrase": password}}
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    empty = workdir / "empty.toml"
    empty.write_text("")
    with capture() as records:
        texts = attempt(lambda: PoolConfig(url=url, **fields), adapters=True)
        texts += attempt(lambda: PoolConfig.from_url(url, **fields))
        texts += attempt(lambda: PoolConfig.from_env(environ=env))
        texts += attempt(lambda: poolbridge.load(path=toml, environ={}))
        texts += cli_show(url, empty) + cli_show(None, toml, "--json")
    return texts + records.lines


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pb_fuzz_") as d:
        yield Path(d)


def check_raw(scheme: str, shape: str, a: str, b: str) -> None:
    password = f"{MARKERS[0]}{a}{MARKERS[1]}{b}{MARKERS[2]}"
    if "@" in password and "@" not in shape.partition("{pw}")[2]:
        return  # "app:pass@word" with no host after it IS user, password and host "word"
    url = shape.format(scheme=scheme, pw=password, qpw=quote(password, safe=""))
    with workdir() as d:
        texts = every_output(url, password, d)
    blob = "\n".join(texts)
    leaked = [m for m in MARKERS if m in blob]
    assert not leaked, (url, leaked, blob[:3000])


def _outputs(scheme: str, shape: str, password: str) -> list[str]:
    escaped = password.replace("\\", "\\\\").replace(" ", "\\ ")  # libpq options escaping
    options = quote(f"-c app.secret={escaped} -c search_path=app", safe="")
    url = shape.format(scheme=scheme, qpw=quote(password, safe=""), opw=options)
    with workdir() as d:
        texts = every_output(url, password, d)
    return [t.replace(str(d), "<dir>") for t in texts]


@functools.cache
def _reference(scheme: str, shape: str) -> tuple[str, ...]:
    return tuple(_outputs(scheme, shape, "Ref3rence-pw"))


def check_independent(scheme: str, shape: str, password: str) -> None:
    got, expected = _outputs(scheme, shape, password), _reference(scheme, shape)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == e, (password, g[:2000], e[:2000])


FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOAK = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))

raw_args = (st.sampled_from(SCHEMES), st.sampled_from(RAW_SHAPES), pieces, pieces)
encoded_args = (st.sampled_from(SCHEMES), st.sampled_from(ENCODED_SHAPES), any_password)


@FAST
@given(*raw_args)
def test_raw_password_in_any_url_shape_never_shows(scheme: str, shape: str, a: str, b: str) -> None:
    check_raw(scheme, shape, a, b)


@FAST
@given(*encoded_args)
def test_outputs_do_not_depend_on_the_password(scheme: str, shape: str, password: str) -> None:
    check_independent(scheme, shape, password)


@pytest.mark.parametrize("shape", RAW_SHAPES)
def test_every_raw_shape_with_url_significant_passwords(shape: str) -> None:
    # hypothesis samples; every shape also runs with the characters that split URLs
    for a, b in (("/", "?"), ("@", "#"), (":", "@127.0.0.1/db?x="), ("%ZZ", "&max_size=")):
        check_raw("postgresql", shape, a, b)


@pytest.mark.parametrize("password", ["postgres", "1", "127", "*"])
def test_common_and_one_character_passwords(password: str) -> None:
    for shape in ENCODED_SHAPES:
        check_independent("postgresql+asyncpg", shape, password)


@pytest.mark.soak
@pytest.mark.timeout(1200)
@SOAK
@given(*raw_args)
def test_soak_raw_password_never_shows(scheme: str, shape: str, a: str, b: str) -> None:
    check_raw(scheme, shape, a, b)


@pytest.mark.soak
@pytest.mark.timeout(1200)
@SOAK
@given(*encoded_args)
def test_soak_outputs_do_not_depend_on_the_password(scheme: str, shape: str, password: str) -> None:
    check_independent(scheme, shape, password)
