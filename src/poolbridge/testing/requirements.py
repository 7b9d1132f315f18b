"""The conformance requirements: what the suite proves, and which knobs each row covers.

A requirement is a row of the matrix. Each names the PoolConfig knobs it proves, so a test
can check that every knob an adapter claims (native or emulated) is covered by a row that
is open for that adapter. An adapter closes a row with a true reason through
``Adapter.closed_requirements(backend, driver)``; rows that make no sense on a backend at
all (server-side counts on SQLite) are closed here, in :data:`BACKEND_CLOSED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poolbridge.adapters.base import Adapter

__all__ = [
    "BACKEND_CLOSED",
    "HA_ROWS",
    "KNOB_REQUIREMENTS",
    "NO_REQUIREMENT",
    "NO_TWIN",
    "PARITY_REQUIREMENTS",
    "REQUIREMENTS",
    "TARGET_CLOSED",
    "Requirement",
    "adapter_closed",
    "closed_reason",
    "ha_refusal",
    "requirement",
    "selected",
]


@dataclass(frozen=True)
class Requirement:
    """One row: its name, what it proves, the knobs it covers, and whether it injects a
    fault (kills backends, restarts a server, cuts connections, storms the pool): fault rows
    run only when asked for (``--poolbridge-faults``)."""

    name: str
    description: str
    knobs: tuple[str, ...]
    fault: bool = False
    parity: bool = False


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "connect",
        "every entry point connects to the URL's database as the URL's user, through the "
        "configured driver, with the pool name visible to the server (application_name)",
        ("url", "driver", "password", "name"),
    ),
    Requirement(
        "min_size",
        "min_size connections exist server-side right after open",
        ("min_size",),
    ),
    Requirement(
        "refill",
        "after a connection is killed server-side the pool is back to min_size",
        ("min_size",),
        fault=True,
    ),
    Requirement(
        "max_size",
        "10x max_size concurrent tasks doing real queries never make the pool exceed "
        "max_size (a server-side connection limit refuses any extra connection)",
        ("max_size",),
    ),
    Requirement(
        "acquire_timeout",
        "an exhausted pool raises PoolTimeout with diagnostics after acquire_timeout, "
        "then serves again",
        ("acquire_timeout",),
    ),
    Requirement(
        "max_waiting",
        "the caller beyond max_waiting queued callers gets TooManyRequests at once",
        ("max_waiting",),
    ),
    Requirement(
        "fairness",
        "waiters are served first-come first-served, even against a greedy re-acquirer",
        (),
    ),
    Requirement(
        "max_lifetime",
        "a connection older than max_lifetime is replaced (closed server-side)",
        ("max_lifetime",),
    ),
    Requirement(
        "max_idle",
        "idle connections above min_size close after max_idle, not before, never below min_size",
        ("max_idle",),
    ),
    Requirement(
        "pre_ping",
        "a connection killed server-side is replaced transparently",
        ("pre_ping",),
        fault=True,
    ),
    Requirement(
        "reset",
        "a connection returned inside an open transaction is rolled back before reuse",
        ("reset",),
    ),
    Requirement(
        "reset_full",
        'reset="full" discards session state at checkin and runs on_connect again (or '
        "replaces the connection)",
        ("reset",),
    ),
    Requirement(
        "cancellation",
        "200 tasks cancelled mid-acquire and mid-query leak no connection",
        (),
    ),
    Requirement(
        "hooks",
        "on_connect/on_checkout/on_checkin/on_timeout/on_close fire in the documented order "
        "with the documented counts and the server-side connection id",
        (),
    ),
    Requirement(
        "stats",
        "pool.stats() agrees with the server (open, used, created, closed, timeouts)",
        (),
    ),
    Requirement(
        "hook_on_connect_settings",
        "SET search_path / SET time_zone run by an async on_connect on the native "
        "connection hold for every later query on every connection, also after a full reset",
        (),
    ),
    Requirement(
        "hook_checkout_tag",
        "a session tag set by on_checkout (application_name, a MySQL user variable) is "
        "what the server shows during the use",
        (),
    ),
    Requirement(
        "hook_checkin_reset",
        "on_checkin undoes the tag before the next user of the same connection gets it, "
        "also when the caller left its transaction open",
        (),
    ),
    Requirement(
        "stats_faults",
        "pool.stats() matches the server's count of the pool's connections during load, "
        "after a cancellation burst and after connections are killed server-side",
        (),
        fault=True,
    ),
    Requirement(
        "close",
        "close() leaves no server connection of the pool; acquire after close raises "
        "PoolClosed; close() is idempotent",
        (),
    ),
    Requirement(
        "isolation",
        "two pools with the same config in one process keep their own limits and connections",
        (),
    ),
    Requirement(
        "session",
        "session settings are applied on every new connection",
        ("session",),
    ),
    Requirement(
        "statement_timeout",
        "a statement running longer than statement_timeout is stopped",
        ("statement_timeout",),
    ),
    Requirement(
        "isolation_level",
        "transactions run at the configured isolation level",
        ("isolation_level",),
    ),
    Requirement(
        "connect_timeout",
        "a server that accepts TCP but never answers is given up after connect_timeout",
        ("connect_timeout",),
    ),
    Requirement(
        "retry",
        "a refused first connection attempt is retried: the pool still opens",
        ("retry",),
    ),
    Requirement(
        "statement_cache",
        "statement_cache=False leaves no server-side prepared statement behind",
        ("statement_cache",),
    ),
    Requirement(
        "leak",
        "a connection held longer than leak_timeout is reported once via on_leak with "
        "the acquiring stack",
        ("leak_timeout",),
    ),
    # the fault-injection rows (suite/test_fault_cases.py): after each fault every caller
    # succeeded or got a poolbridge / connection / timeout error within its bound, the server
    # never held more than max_size of the pool's connections, and it heals to
    # min_size..max_size in agreement with the pool's stats
    Requirement(
        "restart",
        "after a server restart (PostgreSQL: a server of the row's own, stopped and started; "
        "MariaDB/MySQL: every pool connection killed at once) callers fail fast, then the "
        "pool serves again",
        (),
        fault=True,
    ),
    Requirement(
        "kill_idle",
        "idle connections killed server-side are replaced: no caller notices with pre_ping, "
        "each fails at most one caller without",
        ("pre_ping",),
        fault=True,
    ),
    Requirement(
        "kill_mid_query",
        "connections killed server-side mid-query fail their callers promptly, then the "
        "pool serves again",
        (),
        fault=True,
    ),
    Requirement(
        "wait_timeout",
        "connections the server closes after its idle timeout (MySQL wait_timeout, "
        "PostgreSQL idle_session_timeout) are replaced, with and without pre_ping",
        ("session",),
        fault=True,
    ),
    Requirement(
        "proxy_drop",
        "every TCP connection cut by a proxy between pool and server: the pool reconnects",
        (),
        fault=True,
    ),
    Requirement(
        "proxy_stall",
        "a link that carries no byte: statement_timeout and connect_timeout bound the "
        "callers; once healed the pool serves again",
        ("statement_timeout", "connect_timeout"),
        fault=True,
    ),
    Requirement(
        "proxy_refuse",
        "new connections refused and live ones cut: callers fail within acquire_timeout; "
        "once healed the pool serves again",
        ("acquire_timeout",),
        fault=True,
    ),
    Requirement(
        "cancel_storm",
        "1,000 callers cancelled at random points of acquire / query / release leak no "
        "connection and leave none in a transaction",
        (),
        fault=True,
    ),
    Requirement(
        "exhaustion_slow",
        "callers beyond max_size of a slow query get PoolTimeout after acquire_timeout, "
        "none later; the pool serves again",
        ("acquire_timeout",),
        fault=True,
    ),
)

#: the high-availability rows (suite/test_ha.py), on a primary + standby pair of the suite's
#: own (poolbridge.testing.ha): placement is read server-side (pg_is_in_recovery(),
#: @@read_only, the server's port)
HA_ROWS: tuple[Requirement, ...] = (
    Requirement(
        "hosts_order",
        "the first reachable host is used: hosts in the configured order, a refused first "
        "host skipped, a first host that never answers skipped within connect_timeout",
        ("hosts", "connect_timeout"),
    ),
    Requirement(
        "target_primary",
        'target_session_attrs="primary" / "read-write" land on the primary when the standby '
        "is listed first (checked server-side)",
        ("target_session_attrs",),
    ),
    Requirement(
        "target_standby",
        'target_session_attrs="standby" / "read-only" / "prefer-standby" land on the standby '
        "when the primary is listed first (checked server-side)",
        ("target_session_attrs",),
    ),
    Requirement(
        "standby_down",
        "prefer-standby falls back to the primary while the standby refuses connections",
        ("target_session_attrs", "hosts"),
    ),
    Requirement(
        "failover",
        "the primary is killed under a 200-task read-write load and the standby promoted: "
        "the pool serves writes from the new primary within 5 s, the server never holds "
        "more than max_size of its connections, no caller waits past acquire_timeout, and "
        "every error on the way is connection-class (poolbridge.retry(read_write=True))",
        ("hosts", "target_session_attrs"),
        fault=True,
    ),
)

#: the stock-parity rows (suite/test_parity.py): the same scenario on the adapter's stock
#: twin (the ORM built by hand with its native arguments) and on the adapter, compared as
#: the user observes it
PARITY_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "parity_identity",
        "what the ORM derives from the connection (dialect, the classes it picks, "
        "capabilities) and the schema SQL it emits are the stock stack's",
        (),
        parity=True,
    ),
    Requirement(
        "parity_session",
        "session values the server reports (defaults, and the ORM's own connect keys) "
        "are the stock stack's",
        (),
        parity=True,
    ),
    Requirement(
        "parity_closed",
        "using the stack after the ORM's own close raises what stock raises (or works "
        "as stock does)",
        (),
        parity=True,
    ),
    Requirement(
        "parity_exhausted",
        "an exhausted pool raises what stock raises (a PoolTimeout where stock waits forever)",
        (),
        parity=True,
    ),
    Requirement(
        "parity_broken",
        "connecting to a database that does not exist fails with the stock error class "
        "(or a ConnectError chaining an error of the stock error's chain)",
        (),
        parity=True,
    ),
    Requirement(
        "parity_sync",
        "the ORM's synchronous connection is the same server identity (current user, "
        "database) as stock",
        (),
        parity=True,
    ),
    Requirement(
        "parity_pool",
        "the pool object the ORM exposes answers every public attribute stock answers, "
        "with the same values",
        (),
        parity=True,
    ),
    Requirement(
        "parity_ssl",
        "an ssl form the stack accepts stock meets the server as stock (the same outcome)",
        (),
        parity=True,
    ),
)

REQUIREMENTS = REQUIREMENTS + HA_ROWS + PARITY_REQUIREMENTS

_BY_NAME = {r.name: r for r in REQUIREMENTS}


def requirement(name: str) -> Requirement:
    """The requirement called ``name`` (KeyError naming the known ones if none)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown requirement {name!r} (known: {', '.join(_BY_NAME)})") from None


#: knob -> the requirement names that prove it
KNOB_REQUIREMENTS: Mapping[str, tuple[str, ...]] = {
    knob: tuple(r.name for r in REQUIREMENTS if knob in r.knobs)
    for knob in sorted({k for r in REQUIREMENTS for k in r.knobs})
}

_HA = (
    "proven by the project's own tests on a replicated pair (tests/ha: connections spread "
    "over both hosts; a fallback connection moving back), not by a row: the rows check "
    "where a connection lands, not randomness or timing"
)

#: knobs no row can prove, with the reason (they are passed through untouched)
NO_REQUIREMENT: Mapping[str, str] = {
    "driver_options": "passed to the driver untouched; nothing for poolbridge to conform to",
    "ssl": "needs a TLS-enabled server; the test servers speak plain TCP",
    "load_balance_hosts": _HA,
    "host_recheck_interval": _HA,
}

_NO_SERVER = "SQLite has no server: nothing to count or kill server-side"
_NO_SESSION_TAG = "SQLite has no server session to tag: no application_name, no session variables"

#: backend -> requirement -> reason, for rows that make no sense on that backend
BACKEND_CLOSED: Mapping[str, Mapping[str, str]] = {
    "sqlite": {
        "refill": _NO_SERVER,
        "pre_ping": _NO_SERVER,
        "connect_timeout": "SQLite opens a file: there is no network connect to time out",
        "retry": "SQLite opens a file: there is no network connect to refuse",
        "statement_timeout": "SQLite has no server-side statement timeout",
        "statement_cache": "SQLite has no server-side prepared statements",
        "restart": _NO_SERVER,
        "kill_idle": _NO_SERVER,
        "kill_mid_query": _NO_SERVER,
        "wait_timeout": "SQLite has no server to close idle connections",
        "proxy_drop": "SQLite opens a file: there is no network connection to cut",
        "proxy_stall": "SQLite opens a file: there is no network connection to stall",
        "proxy_refuse": "SQLite opens a file: there is no network connection to refuse",
        "cancel_storm": "SQLite has no server to count leaked or in-transaction connections "
        "(the cancellation row checks the pool's own side)",
        "exhaustion_slow": "SQLite has no sleep function for a slow query (the "
        "acquire_timeout row checks exhaustion)",
        "session": "SQLite has no session settings (PRAGMAs are per-driver options)",
        "isolation_level": "SQLite has no isolation level setting",
        "stats_faults": _NO_SERVER,
        "hook_on_connect_settings": "SQLite has no server session: no search_path or "
        "time_zone (its per-connection PRAGMAs are driver options)",
        "hook_checkout_tag": _NO_SESSION_TAG,
        "hook_checkin_reset": _NO_SESSION_TAG,
        "parity_ssl": "SQLite opens a file: there is no TLS to compare",
        **{
            r.name: "SQLite opens a local file: there are no hosts, no primary and no standby"
            for r in HA_ROWS
        },
    },
    "mysql": {},
    "postgresql": {},
}


_PGBOUNCER_NO_KILL = (
    "through pgbouncer the row cannot kill one of the pool's connections: pgbouncer has no "
    "command that closes one client connection (KILL closes every client of a database), "
    "and terminating a server connection is invisible to a client in transaction pooling, "
    "which holds none between transactions"
)
_PGBOUNCER_SESSION = (
    "through pgbouncer in transaction pooling a session setting does not stay with the "
    "client: pgbouncer refuses it as a startup parameter (from one server connection to the "
    "next it carries only client_encoding, DateStyle, TimeZone, standard_conforming_strings "
    "and application_name), and a SET lands on whichever server connection serves that "
    "transaction; set it per role or database in PostgreSQL (ALTER ROLE ... SET) instead"
)
_PGBOUNCER_PID = (
    "the row reads pg_stat_activity by the connection's backend pid; through pgbouncer a "
    "client has no backend of its own (the pid its driver reports is a cancel key pgbouncer "
    "made up)"
)

#: what stands between pool and server ("pgbouncer") -> requirement -> reason, for rows
#: that cannot apply through it (``--poolbridge-pgbouncer``)
TARGET_CLOSED: Mapping[str, Mapping[str, str]] = {
    "pgbouncer": {
        "refill": _PGBOUNCER_NO_KILL,
        "pre_ping": _PGBOUNCER_NO_KILL,
        "kill_idle": _PGBOUNCER_NO_KILL,
        "kill_mid_query": _PGBOUNCER_NO_KILL,
        "stats_faults": _PGBOUNCER_NO_KILL,
        "restart": "the row restarts a PostgreSQL of its own, which the target's pgbouncer "
        "does not front (restarting the pgbouncer the URL names is not the suite's to do)",
        "wait_timeout": "PostgreSQL's idle_session_timeout closes pgbouncer's server "
        "connections, which pgbouncer replaces unseen by its clients; the idle timeout a "
        "pool meets through pgbouncer is pgbouncer's client_idle_timeout, its own "
        "configuration, not the suite's",
        "session": _PGBOUNCER_SESSION,
        "statement_timeout": _PGBOUNCER_SESSION,
        "isolation_level": _PGBOUNCER_SESSION,
        "proxy_stall": "the row bounds callers by statement_timeout; " + _PGBOUNCER_SESSION,
        "hook_on_connect_settings": "the row's on_connect sets search_path; " + _PGBOUNCER_SESSION,
        "reset_full": "through pgbouncer session state lives on its server connections, "
        "not on the client: a SET stays on the server connection its transaction ran on (and "
        "reaches whichever client gets that one next), out of reach of the client's full "
        "reset, which runs on another server connection or reconnects to pgbouncer",
        "hook_checkout_tag": _PGBOUNCER_PID,
        "hook_checkin_reset": _PGBOUNCER_PID,
        **{
            r.name: "the high-availability rows run on a replicated pair of their own, which "
            "the pgbouncer of the URL does not front (run them without --poolbridge-pgbouncer)"
            for r in HA_ROWS
        },
        **{
            r.name: "a stock twin is built as its users build it against a server; "
            "behind pgbouncer in transaction pooling a stock stack needs settings of its "
            "own (prepared statements off) that a parity row would have to invent"
            for r in PARITY_REQUIREMENTS
        },
    },
}


def closed_reason(
    adapter: Adapter, backend: str, driver: str, name: str, via: str = ""
) -> str | None:
    """Why ``name`` is closed for this adapter/backend/driver (reached ``via`` pgbouncer,
    or directly when empty), or None when it is open."""
    reason = TARGET_CLOSED.get(via, {}).get(name) if via else None
    if reason is not None:
        return reason
    reason = BACKEND_CLOSED.get(backend, {}).get(name)
    if reason is not None:
        return reason
    reason = adapter_closed(adapter, backend, driver).get(name)
    if reason is not None or not name.startswith("parity_"):
        return reason
    twin = adapter.stock_twin()
    if twin is None:
        return NO_TWIN
    return twin.closed_rows(backend, driver).get(name)


#: the knobs every high-availability row sets
_HA_KNOBS = ("hosts", "target_session_attrs")
_HA_PROBE_URL = {
    "postgresql": "postgresql://probe@127.0.0.1:5432/probe",
    "mysql": "mysql://probe@127.0.0.1:3306/probe",
}


def ha_refusal(adapter: Adapter, backend: str, driver: str) -> str | None:
    """Why the adapter cannot run the high-availability rows on this column, in its own
    words: what its translation table says of ``hosts`` and ``target_session_attrs`` for
    a config of two hosts and a target (None: it honours them)."""
    from poolbridge.config.model import PoolConfig
    from poolbridge.errors import UnsupportedOptionError

    url = _HA_PROBE_URL.get(backend)
    if url is None:
        return None
    probe = PoolConfig(
        url=url, driver=driver, hosts=("127.0.0.1:5001", "127.0.0.1:5002"),
        target_session_attrs="read-write", host_recheck_interval=None,
    )  # fmt: skip
    try:
        refused = adapter.translate(probe).unsupported
    except UnsupportedOptionError as exc:
        refused = dict(exc.problems)
    by_reason: dict[str, list[str]] = {}
    for knob in _HA_KNOBS:
        if knob in refused:
            by_reason.setdefault(refused[knob], []).append(knob)
    if not by_reason:
        return None
    return "the adapter refuses " + "; ".join(
        f"{' and '.join(knobs)}: {why}" for why, knobs in by_reason.items()
    )


def adapter_closed(adapter: Adapter, backend: str, driver: str) -> dict[str, str]:
    """Rows the adapter closes for this column: its ``closed_requirements`` and, when its
    translation refuses the high-availability knobs, the high-availability rows."""
    closed = dict(adapter.closed_requirements(backend, driver))
    refusal = ha_refusal(adapter, backend, driver)
    if refusal is not None:
        for r in HA_ROWS:
            closed.setdefault(r.name, refusal)
    return closed


def selected(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether row ``name`` runs under ``--requirement`` globs: no pattern selects every
    row; a pattern starting with ``!`` deselects the rows it matches; plain patterns select
    only what they match."""
    from fnmatch import fnmatch

    plain = [p for p in patterns if not p.startswith("!")]
    if any(fnmatch(name, p[1:]) for p in patterns if p.startswith("!")):
        return False
    return not plain or any(fnmatch(name, p) for p in plain)


#: why a parity row is closed for an adapter without a stock twin
NO_TWIN = (
    "the adapter has no stock twin (Adapter.stock_twin_path): it is the driver's own pool "
    "API or has no stock stack to compare with"
)
