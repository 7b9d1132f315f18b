"""Tortoise ORM adapter: one PoolConfig -> a Tortoise connection that honours it.

Usage::

    from poolbridge.adapters.tortoise import init, native_arguments, open_pool

    pools = await init(config, modules={"models": ["app.models"]})   # Tortoise.init + warm-up
    ...
    await pools.close(timeout=5)                                      # drain, then close

    TORTOISE_ORM = native_arguments(config, apps={"models": {"models": ["app.models"]}})
    pool = await open_pool(config)   # one connection without models, as the uniform handle

``native_arguments`` is also known as ``tortoise_config``.

Tortoise's asyncpg/MySQL backends and SQLite files get poolbridge's pool engine under their
client (the connection's ``engine`` path names poolbridge's module for that backend, see
``backends``); the psycopg backend keeps psycopg_pool with poolbridge's errors, hooks and
stats; SQLite ``:memory:`` runs on Tortoise's own client. The knob table is ``_translate``,
the table of Tortoise's own connection keys ``_keys``. Importing this module does not
import Tortoise.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from poolbridge.adapters._glue import open_or_close
from poolbridge.adapters._ha import ha_rows
from poolbridge.adapters._rows import first_value
from poolbridge.adapters.base import (
    Adapter,
    EntryPoint,
    ScalarRunner,
    Translation,
    as_config,
    enforce,
    opener,
    require_modules,
)
from poolbridge.adapters.tortoise import _translate as table
from poolbridge.adapters.tortoise._keys import keys_doc_table, refused_keys
from poolbridge.adapters.tortoise._pool import TortoisePool, TortoisePools, warm_up
from poolbridge.adapters.tortoise.backends import TortoiseBinding
from poolbridge.config.model import PoolConfig
from poolbridge.errors import PoolClosed, UnsupportedOptionError, UnsupportedOptionWarning
from poolbridge.pool.handle import PoolOpener
from poolbridge.pool.hooks import Hooks

__all__ = [
    "TortoiseAdapter",
    "TortoisePool",
    "TortoisePools",
    "adapter",
    "connect",
    "doc_table",
    "init",
    "keys_table",
    "native_arguments",
    "open_pool",
    "tortoise_config",
]

#: the entry points named after Tortoise's own (docs/adapters/index.md lists them)
ORM_ENTRY_POINTS = (
    "init(config, modules) -> handles by connection name",
    "connect(config, modules)",
    "tortoise_config(config, apps)",
)
#: how the object the ORM-named entry points give reaches its uniform handle
HANDLE_ACCESS: str | None = "init() / connect() return them"

#: one PoolConfig (or a URL with pool options in its query), or connection name -> PoolConfig
ConfigArg = PoolConfig | str | Mapping[str, PoolConfig]

#: an app whose module holds no model: lets open() run Tortoise without user models
_NO_MODELS_APP = "poolbridge_no_models"


class TortoiseAdapter(Adapter):
    """Tortoise ORM >= 1.1 on asyncpg, psycopg, MySQL (asyncmy or aiomysql) and SQLite."""

    name = "tortoise"
    extra = "tortoise"
    stock_twin_path = "poolbridge.adapters.tortoise._twin:TortoiseTwin"
    drivers: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "postgresql": ("asyncpg", "psycopg"),
        "mysql": (table.mysql_driver_of_tortoise(),),
        "sqlite": ("aiosqlite",),
    }

    def driver_for(self, config: PoolConfig) -> str:
        wanted = config.driver or config.database_url.driver
        if config.backend == "mysql" and wanted in ("asyncmy", "aiomysql"):
            imported = table.mysql_driver_of_tortoise()
            if wanted != imported:
                raise UnsupportedOptionError(
                    self.name,
                    {
                        "driver": f"Tortoise's MySQL backend uses {imported} when it is "
                        f"installed (its error classes come from it); {wanted!r} cannot "
                        "be used under it"
                    },
                )
        return super().driver_for(config)

    def check_available(self, config: PoolConfig | None = None) -> None:
        modules = ["tortoise"]
        if config is not None:
            modules.append(_driver_module(self.driver_for(config)))
        require_modules(self.name, self.extra, *modules)

    def translate(self, config: PoolConfig) -> Translation:
        driver = self.driver_for(config)
        native = table.connection_dict(config, driver, binding=None)
        unsupported = table.unsupported(config, driver)
        unsupported.update(refused_keys(config, driver))
        if table.on_engine(config, driver):
            from poolbridge.adapters._engine_holder import shim_unsupported

            unsupported.update(shim_unsupported(driver, config))
        emulated = table.emulated(config, driver)
        if table.on_engine(config, driver):
            ha_emulated, ha_unsupported = ha_rows(config, "engine")
        else:
            ha_emulated, ha_unsupported = ha_rows(config, "refuse", table.TORTOISE_OWN_CLIENT)
        emulated.update(ha_emulated)
        unsupported.update(ha_unsupported)
        emulated = {k: v for k, v in emulated.items() if k not in unsupported}
        return Translation(native=native, emulated=emulated, unsupported=unsupported)

    async def open(self, config: PoolConfig, hooks: Hooks | None = None) -> TortoisePool:
        """One connection in its own TortoiseContext (no models), warmed up to min_size."""
        self.check_available(config)
        self.enforce(config)
        from tortoise.context import TortoiseContext

        ctx = TortoiseContext()
        app = {"models": [table.ENGINE_MODULE], "default_connection": config.name}
        tconfig = _connections_config(
            config, {_NO_MODELS_APP: app}, config.name, hooks=hooks, enforced=True
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*has no models", category=RuntimeWarning)
            await ctx.init(config=tconfig)
        client = ctx.connections.get(config.name)
        pool = TortoisePool(config, client, context=ctx, owns_context=True)
        return await open_or_close(pool, warm_up(client))

    def enforce(self, config: PoolConfig) -> None:
        """Refuse Tortoise keys the stack cannot keep (always explicit: the user wrote them),
        then :func:`~poolbridge.adapters.base.enforce` the knobs; warn for what the stock
        stack would silently discard."""
        driver = self.driver_for(config)
        refused = refused_keys(config, driver)
        if refused:
            raise UnsupportedOptionError(self.name, refused)
        enforce(self.name, config, self.translate(config))
        for message in table.dropped_warnings(config, driver):
            warnings.warn(message, UnsupportedOptionWarning, stacklevel=3)

    def closed_requirements(self, backend: str, driver: str) -> Mapping[str, str]:
        # every backend meets every row (SQLite: file databases, on the engine); SQLite
        # :memory: is not pooled and says so per config through translate()
        return {}

    async def fetch_scalar(self, conn: Any, sql: str) -> Any:
        kind = type(conn).__module__.split(".", 1)[0]
        if kind == "asyncpg":
            return await conn.fetchval(sql)
        if kind == "psycopg":
            cur = await conn.execute(sql)
            return None if cur.description is None else first_value(await cur.fetchone())
        if kind == "aiosqlite":
            async with conn.execute(sql) as cur:
                return first_value(await cur.fetchone())
        async with conn.cursor() as cur:  # aiomysql / asyncmy
            await cur.execute(sql)
            return None if cur.description is None else first_value(await cur.fetchone())

    def entry_points(self, pool: Any) -> Mapping[str, EntryPoint]:
        points = dict(super().entry_points(pool))

        @asynccontextmanager
        async def tortoise_connection() -> AsyncIterator[ScalarRunner]:
            # Tortoise's query path, holding one connection for the block: the client's
            # acquire_connection() (its pool wrapper) checks it out, and run() calls
            # connections.get(name).execute_query() on a Tortoise client bound to it (the
            # wrapper Tortoise itself binds in in_transaction(), without BEGIN)
            if pool.closed:
                raise PoolClosed(f"pool {pool.alias!r} is closed")
            with pool.entered():
                from tortoise.connection import get_connections

                handler = get_connections()
                client: Any = handler.get(pool.alias)
                async with client.acquire_connection() as conn:
                    tx_ctx = client._in_transaction()
                    bound = getattr(tx_ctx, "client", None) or tx_ctx.connection
                    bound._connection = conn
                    token = handler.set(pool.alias, bound)
                    try:

                        async def run(sql: str) -> Any:
                            _, rows = await handler.get(pool.alias).execute_query(sql)
                            return first_value(rows[0]) if rows else None

                        yield run
                    finally:
                        handler.reset(token)

        @asynccontextmanager
        async def in_transaction() -> AsyncIterator[ScalarRunner]:
            # Tortoise's transaction path: run() goes through the client's execute_query
            if pool.closed:
                raise PoolClosed(f"pool {pool.alias!r} is closed")
            with pool.entered():
                from tortoise.transactions import in_transaction as tortoise_in_transaction

                async with tortoise_in_transaction(pool.alias) as tx:

                    async def run(sql: str) -> Any:
                        _, rows = await tx.execute_query(sql)
                        return first_value(rows[0]) if rows else None

                    yield run

        points["tortoise.connection"] = tortoise_connection
        points["in_transaction"] = in_transaction
        return points


adapter = TortoiseAdapter()


def doc_table() -> str:
    """The translation table as it appears in docs/adapters/tortoise.md."""
    return table.tortoise_doc_table()


def keys_table() -> str:
    """Tortoise's own connection keys per backend, as docs/adapters/tortoise.md shows them."""
    return keys_doc_table()


def _driver_module(driver: str) -> str:
    return {"psycopg": "psycopg_pool"}.get(driver, driver)


def _as_mapping(config: ConfigArg, connection: str) -> dict[str, PoolConfig]:
    if isinstance(config, PoolConfig | str):
        return {connection: as_config(config)}
    return dict(config)


def native_arguments(
    config: ConfigArg,
    apps: Mapping[str, Any] | None = None,
    connection: str = "default",
    *,
    hooks: Hooks | None = None,
) -> dict[str, Any]:
    """The dict for ``Tortoise.init(config=...)``, ``register_tortoise`` or aerich.

    ``config`` is one PoolConfig (named ``connection``) or a mapping connection name ->
    PoolConfig (several named connections). ``apps`` is Tortoise's ``apps`` section
    (``{"models": {"models": ["app.models"], "default_connection": "default"}}``).
    The credentials carry a password provider instead of the password, so Tortoise's
    logs never see it. Explicitly set knobs the backend cannot honour raise
    UnsupportedOptionError here, before Tortoise sees anything.
    """
    return _connections_config(config, apps, connection, hooks=hooks, enforced=False)


tortoise_config = native_arguments
"""The name :func:`native_arguments` is also known by."""


def open_pool(config: PoolConfig | str, *, hooks: Hooks | None = None) -> PoolOpener[TortoisePool]:
    """One Tortoise connection without models as the uniform handle, warmed up:
    ``pool = await open_pool(config)`` or ``async with open_pool(config) as pool:``;
    ``pool.native`` is the Tortoise client. Use :func:`init` for your models."""
    return opener(adapter, config, hooks)


def _connections_config(
    config: ConfigArg,
    apps: Mapping[str, Any] | None,
    connection: str,
    *,
    hooks: Hooks | None,
    enforced: bool,
) -> dict[str, Any]:
    """The Tortoise config dict; ``enforced``: the knobs were already checked by the caller."""
    connections: dict[str, Any] = {}
    for name, cfg in _as_mapping(config, connection).items():
        driver = adapter.driver_for(cfg)
        if not enforced:
            adapter.enforce(cfg)
        binding = None
        if not (driver == "aiosqlite" and table.in_memory(cfg)):
            binding = TortoiseBinding(cfg, table.engine_config(cfg, driver), driver, hooks)
        connections[name] = table.connection_dict(cfg, driver, binding)
    return {"connections": connections, "apps": dict(apps or {})}


def _apps_from_modules(
    modules: Mapping[str, Iterable[Any]], default_connection: str
) -> dict[str, Any]:
    return {
        label: {"models": list(mods), "default_connection": default_connection}
        for label, mods in modules.items()
    }


async def init(
    config: ConfigArg,
    modules: Mapping[str, Iterable[Any]] | None = None,
    *,
    apps: Mapping[str, Any] | None = None,
    connection: str = "default",
    hooks: Hooks | None = None,
    **tortoise_kwargs: Any,
) -> TortoisePools:
    """``Tortoise.init`` with poolbridge connections, then warm every pool up to min_size.

    ``modules`` is Tortoise's ``{"app_label": ["app.models"]}`` (or give ``apps``);
    other keyword arguments go to ``Tortoise.init`` (``use_tz``, ``timezone``...).
    Returns the Pool handles by connection name; ``await pools.close(timeout=)`` drains
    them and closes Tortoise's connections.
    """
    from tortoise import Tortoise

    named = _as_mapping(config, connection)
    default = connection if connection in named else next(iter(named))
    app_section = dict(apps) if apps is not None else _apps_from_modules(modules or {}, default)
    tconfig = tortoise_config(named, apps=app_section, hooks=hooks)
    ctx = await Tortoise.init(config=tconfig, **tortoise_kwargs)
    pools = TortoisePools(
        {name: TortoisePool(cfg, ctx.connections.get(name), context=ctx)
         for name, cfg in named.items()},
        ctx,
    )  # fmt: skip
    return await open_or_close(pools, _warm_up_all(pools))


async def _warm_up_all(pools: TortoisePools) -> None:
    for pool in pools.values():
        await warm_up(pool.native)


@asynccontextmanager
async def connect(
    config: ConfigArg,
    modules: Mapping[str, Iterable[Any]] | None = None,
    *,
    close_timeout: float | None = 10.0,
    **kwargs: Any,
) -> AsyncIterator[TortoisePools]:
    """``async with connect(config, modules=...) as pools:`` — :func:`init`, then on exit
    drain (up to ``close_timeout`` s) and close every connection."""
    pools = await init(config, modules, **kwargs)
    try:
        yield pools
    finally:
        await pools.close(timeout=close_timeout)
