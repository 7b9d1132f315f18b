"""The password never shows: repr, str, ConfigError text, logging, the redaction helpers."""

from __future__ import annotations

import logging

import pytest

from poolbridge import ConfigError, PoolConfig
from poolbridge.config.redact import MASK, redact_mapping, redact_text, redact_url

SECRET = "s3cret-Pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cret@h/db", "postgresql://app:***@h/db"),
        ("postgresql://app:s3@cr@t@h:5432/db", "postgresql://app:***@h:5432/db"),
        ("mysql+aiomysql://root:p%40ss@127.0.0.1/test?charset=utf8", "mysql+aiomysql://root:***@127.0.0.1/test?charset=utf8"),
        ("postgresql://app@h/db?password=s3cret&sslmode=require", "postgresql://app@h/db?password=***&sslmode=require"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ("postgresql://app:@h/db", "postgresql://app:@h/db"),
    ],
)  # fmt: skip
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_of_garbage_masks_up_to_the_last_at() -> None:
    assert redact_url("app:s3/cr?et@h/db") == "***@h/db"  # no scheme
    assert redact_url("postgresql://app:s3/cr?et@h/db") == "postgresql://***@h/db"
    assert redact_url("postgresql://app:s3#cr@h/db") == "postgresql://***@h/db"
    assert redact_url("postgresql://app:s3cret/db") == "postgresql://app:***/db"  # '@' missing
    assert redact_url("postgresql://h:5432/db#frag") == "postgresql://h:5432/db#***"
    assert redact_url(None) == MASK


def test_redact_text_conninfo_and_urls() -> None:
    text = "connecting host=h password='a b' dbname=x; dsn postgresql://u:pw@h/db"
    out = redact_text(text)
    assert "a b" not in out and ":pw@" not in out
    assert "password=***" in out and "host=h" in out


def test_redact_mapping_nested_and_sensitive_keys() -> None:
    def provider() -> str:
        return "tok"

    native = {
        "host": "127.0.0.1",
        "password": SECRET,
        "credentials": {"user": "app", "password": SECRET, "port": 5432},  # Tortoise shape
        "dsn": f"postgresql://app:{SECRET}@h/db?sslmode=require",
        "conninfo": f"host=h password={SECRET}",
        "servers": [{"api_key": "k3y-value"}],
        "token_provider": provider,
        "empty_password": "",
        "options": ("-c", "statement_timeout=5s"),
    }
    out = redact_mapping(native)
    text = repr(out)
    assert SECRET not in text and "k3y-value" not in text and "function" not in text
    assert out["token_provider"] == MASK
    assert out["host"] == "127.0.0.1" and out["credentials"]["user"] == "app"
    assert out["credentials"]["port"] == 5432 and out["options"] == ("-c", "statement_timeout=5s")
    assert out["empty_password"] == ""
    assert native["password"] == SECRET  # the input is not modified


def configs() -> list[PoolConfig]:
    return [
        PoolConfig(url=f"postgresql://app:{SECRET}@127.0.0.1/db"),
        PoolConfig(url="postgresql://app@127.0.0.1/db", password=SECRET),
        PoolConfig(url="postgresql://app@127.0.0.1/db", driver_options={"password": SECRET}),
        PoolConfig(url=f"postgresql://app@127.0.0.1/db?password={SECRET}"),
    ]


@pytest.mark.parametrize("config", configs())
def test_repr_str_and_format_hide_the_password(config: PoolConfig) -> None:
    for text in (repr(config), str(config), f"{config}", f"{config!r}", repr([config])):
        assert SECRET not in text
    assert "postgresql://app" in repr(config)
    assert SECRET not in repr(config.database_url)


def test_config_error_text_hides_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig(url=f"postgresql://app:{SECRET}@h:badport/db", password=12345678)
    text = str(info.value) + repr(info.value) + " ".join(info.value.problems)
    assert SECRET not in text and "12345678" not in text
    assert "url has an invalid port: expected a number from 1 to 65535" in text
    assert "(got 'postgresql://***@h')" in text  # a URL that does not parse: scheme and host
    assert "password must be a string" in text and "(got int)" in text
    with pytest.raises(ConfigError) as info:
        PoolConfig(url=f"http://app:{SECRET}@h/db", driver_options=[SECRET])  # type: ignore[arg-type]
    assert SECRET not in str(info.value)


def test_logging_a_config_hides_the_password(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("poolbridge.test")
    with caplog.at_level(logging.DEBUG):
        for c in configs():
            log.debug("opening %s", c)
            log.info("config=%r dict=%s", c, c.to_dict(redact=True))
    assert len(caplog.records) == 8
    assert SECRET not in caplog.text


def test_to_dict_redact_form() -> None:
    c = PoolConfig(url=f"postgresql://app:{SECRET}@h/db", password=SECRET)
    shown = c.to_dict(redact=True)
    assert shown["password"] == MASK and shown["url"] == "postgresql://app:***@h/db"
    assert SECRET not in repr(shown)
    assert PoolConfig(url="sqlite://", password=lambda: "x").to_dict(redact=True)["password"] == (
        "<provider>"
    )
    assert c.to_dict()["password"] == SECRET  # the plain form round-trips
    assert set(c.secrets()) == {SECRET}


def test_redacting_filter_for_foreign_loggers(caplog: pytest.LogCaptureFixture) -> None:
    from poolbridge.config.redact import RedactingFilter

    log = logging.getLogger("some.orm")
    flt = RedactingFilter()
    log.addFilter(flt)
    try:
        with caplog.at_level(logging.DEBUG, logger="some.orm"):
            log.debug("conninfo: host=h password=%s dbname=x", SECRET)
            log.debug("dsn %s", f"postgresql://u:{SECRET}@h/db")
            log.debug("options -c app.token=%s -c search_path=app", SECRET)
            log.debug("nothing secret %d", 42)
    finally:
        log.removeFilter(flt)
    assert SECRET not in caplog.text
    assert "password=***" in caplog.text and "nothing secret 42" in caplog.text
    assert "app.token=*** -c search_path=app" in caplog.text
    assert len(caplog.records) == 4


# -- a URL that does not parse is never echoed (finding 1) --------------------------------------

UNPARSABLE = [
    "postgresql://pbuser:S3cr3t-Zq9?x@127.0.0.1/test",  # '?' in the password
    "postgresql://pbuser:S3cr3t/Zq9@127.0.0.1/test",  # '/' in the password
    "postgresql://pbuser:S3cr3t#Zq9@127.0.0.1/test",  # '#' in the password
    "pbuser:S3cr3t-Zq9@127.0.0.1/test",  # no scheme
    "postgresql//pbuser:S3cr3t-Zq9@127.0.0.1/test",  # no '://'
    "postgresql://pbuser:S3cr3t-Zq9/test",  # '@' and host missing: reads as a bad port
]
PIECES = ("S3cr3t", "Zq9")


@pytest.mark.parametrize("url", UNPARSABLE)
def test_unparsable_url_is_never_echoed(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from poolbridge import cli

    with pytest.raises(ConfigError) as info:
        PoolConfig(url=url)
    errors = [info.value]
    with pytest.raises(ConfigError) as info:
        PoolConfig.from_env(environ={"POOLBRIDGE_URL": url})
    errors.append(info.value)
    assert "[env POOLBRIDGE_URL]" in str(info.value)
    for exc in errors:
        text = str(exc) + repr(exc) + repr(exc.__context__) + repr(exc.__cause__)
        assert not any(p in text for p in PIECES), text
    assert cli.main(["config", "show", "--url", url, "--config", _empty_toml()]) == 2
    out = capsys.readouterr()
    assert "problem in pool configuration" in out.err
    assert not any(p in out.err + out.out for p in PIECES), out.err


def _empty_toml() -> str:
    import tempfile

    path = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)  # noqa: SIM115
    path.close()
    return path.name


# -- secret-named keys are masked in every mapping (finding 2) ---------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"sslpassword={SECRET}",
        f"sslmode=require&sslpassword={SECRET}",
        f"passfile={SECRET}",
        f"options=-c%20app.token%3D{SECRET}%20-c%20search_path%3Dapp",
        f"api_token={SECRET}",
    ],
)
def test_secret_query_keys_are_masked(query: str, capsys: pytest.CaptureFixture[str]) -> None:
    from poolbridge import cli

    c = PoolConfig(url=f"postgresql://app@127.0.0.1/db?{query}")
    for text in (repr(c), repr(c.database_url), str(c.to_dict(redact=True))):
        assert SECRET not in text, text
    args = ["config", "show", "--url", c.url, "--config", _empty_toml(), "--adapter", "all"]
    assert cli.main(args) in (0, 1)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "app@127.0.0.1/db?" in out.out


def test_secret_keys_masked_in_session_and_nested_driver_options() -> None:
    c = PoolConfig(
        url="postgresql://app@127.0.0.1/db",
        session={"app.token": SECRET, "search_path": "app"},
        driver_options={"ssl": {"key": {"passphrase": SECRET}}, "servers": [{"secret": SECRET}]},
    )
    shown = c.to_dict(redact=True)
    assert shown["session"] == {"app.token": MASK, "search_path": "app"}
    assert shown["driver_options"]["ssl"]["key"]["passphrase"] == MASK
    assert SECRET not in repr(c) + repr(shown)


# -- redaction by structure, never by value (finding 3) ----------------------------------------


@pytest.mark.parametrize("password", ["postgres", "1", "ql", "app", "127"])
def test_a_common_password_does_not_mangle_output(password: str) -> None:
    url = f"postgresql+asyncpg://postgres:{password}@127.0.0.1/postgres?application_name=x1"
    c = PoolConfig(url=url, name="app1")
    expected = "postgresql+asyncpg://postgres:***@127.0.0.1/postgres?application_name=x1"
    assert c.to_dict(redact=True)["url"] == expected
    assert f"url={expected!r}" in repr(c) and "name='app1'" in repr(c)
    with pytest.raises(ConfigError) as info:
        PoolConfig(url=url, driver="aiomysql", max_size=0)
    text = str(info.value)
    assert "driver must be one of asyncpg, psycopg, aiopg for a postgresql URL" in text
    assert "max_size must be >= 1 (got 0)" in text
    # the same value elsewhere is what the user wrote there, not a secret
    c = PoolConfig(url=url, session={"application_name": password})
    assert c.to_dict(redact=True)["session"] == {"application_name": password}


def test_redaction_output_does_not_depend_on_the_password() -> None:
    from urllib.parse import quote

    def shown(pw: str) -> str:
        c = PoolConfig(
            url=f"postgresql://app:{quote(pw, safe='')}@127.0.0.1/db?sslpassword={quote(pw)}",
            password=pw,
            driver_options={"password": pw},
        )
        return repr(c) + repr(c.database_url) + repr(c.to_dict(redact=True))

    assert shown("postgres") == shown("x") == shown("postgresql://a:b@c/d?password=e")
