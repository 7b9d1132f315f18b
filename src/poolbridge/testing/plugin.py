"""The pytest plugin: ``pytest --poolbridge-adapter=NAME --poolbridge-dburl=URL``.

Loaded through the ``pytest11`` entry point ``poolbridge.testing`` (so ``-p
poolbridge.testing`` names the same plugin) and inert unless one of its options or ini keys
is given. Then it adds its own installed suite (:mod:`poolbridge.testing.suite`) to the
collection — an empty directory collects the suite — parametrizes it over adapter x dburl
x driver x entry point, and prints the matrix at the end of the session.
"""

from __future__ import annotations

import importlib.util
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from poolbridge.testing.admin import in_ci, reachable
from poolbridge.testing.harness import Case, Target
from poolbridge.testing.matrix import Cell, Matrix
from poolbridge.testing.requirements import closed_reason, requirement, selected

if TYPE_CHECKING:
    from poolbridge.testing.ha import PairSource

__all__ = [
    "poolbridge_case",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]

SUITE_DIR = Path(__file__).parent / "suite"
#: event loops the suite can run on (--poolbridge-loop / poolbridge_loop)
LOOPS = ("asyncio", "uvloop")
_STATE = pytest.StashKey["PluginState"]()
_CELL_PROPERTY = "poolbridge_cell"


class PluginState:
    """What the plugin knows for one pytest session."""

    def __init__(
        self, adapters: list[str], dburls: list[str], faults: bool, pgbouncer: bool = False
    ) -> None:
        self.adapter_names = adapters
        self.dburls = dburls
        self.faults = faults
        self.via = "pgbouncer" if pgbouncer else ""
        self.loop = "asyncio"
        self.matrix = Matrix()
        self.targets: list[Target] = []
        self.unavailable: dict[str, str] = {}
        self.notes: list[str] = []
        self._reachable: dict[str, str | None] = {}
        self._entry_points: dict[str, list[str]] = {}
        self.ha_dburls: list[str] = []
        self._pairs: PairSource | None = None
        self._build_targets()

    @property
    def pairs(self) -> PairSource:
        """The replicated pairs of the high-availability rows (started on first need)."""
        if self._pairs is None:
            from poolbridge.testing.ha import PairSource

            self._pairs = PairSource(self.ha_dburls)
        return self._pairs

    def close(self) -> None:
        """Stop what the session started (the replicated pairs)."""
        if self._pairs is not None:
            self._pairs.close()

    def _build_targets(self) -> None:
        from poolbridge.adapters.registry import adapter_names, get_adapter
        from poolbridge.config.model import PoolConfig
        from poolbridge.errors import AdapterNotAvailable, ConfigError

        names: list[str] = []
        for name in self.adapter_names:
            if name == "all":
                names.extend(n for n in adapter_names(installed_only=True) if n not in names)
            elif name not in names:
                names.append(name)
        for name in names:
            try:
                adapter = get_adapter(name)
                adapter.check_available()
            except AdapterNotAvailable as exc:
                if name not in adapter_names() or in_ci():
                    raise pytest.UsageError(str(exc)) from exc
                self.unavailable[name] = str(exc)
                continue
            for url in self.dburls:
                try:
                    cfg = PoolConfig(url=url)
                except ConfigError as exc:
                    raise pytest.UsageError(f"--poolbridge-dburl: {exc}") from exc
                if self.via and cfg.backend != "postgresql":
                    raise pytest.UsageError(
                        f"--poolbridge-pgbouncer: a {cfg.backend} URL cannot be a pgbouncer"
                    )
                drivers = adapter.drivers.get(cfg.backend, ())
                wanted = cfg.database_url.driver
                found = [d for d in drivers if wanted is None or wanted == d]
                if not found:
                    self.notes.append(
                        f"adapter {name!r} has no driver "
                        f"{wanted or 'at all'} for {cfg.backend}: no column"
                    )
                for driver in found:
                    self.targets.append(Target(name, url, cfg.backend, driver, self.via))

    def reachable(self, url: str) -> str | None:
        if url not in self._reachable:
            self._reachable[url] = reachable(url)
        return self._reachable[url]

    def entry_points(self, adapter_name: str) -> list[str]:
        """Entry point names of an adapter, read without opening a pool."""
        if adapter_name not in self._entry_points:
            from poolbridge.adapters.registry import get_adapter
            from poolbridge.testing._placeholder import PlaceholderPool

            try:
                points = list(get_adapter(adapter_name).entry_points(PlaceholderPool()))
            except Exception:
                points = ["handle"]
            self._entry_points[adapter_name] = points
        return self._entry_points[adapter_name]


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p for p in v.replace(",", " ").split() if p)
    return out


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("poolbridge", "poolbridge conformance suite")
    group.addoption(
        "--poolbridge-adapter",
        action="append",
        default=None,
        metavar="NAME",
        help="run the conformance suite for this adapter (repeatable; 'all' = every "
        "installed adapter)",
    )
    group.addoption(
        "--poolbridge-dburl",
        action="append",
        default=None,
        metavar="URL",
        help="database URL of a privileged user the suite runs against (repeatable)",
    )
    group.addoption(
        "--poolbridge-faults",
        action="store_true",
        default=None,
        help="also run the fault rows, which kill server connections",
    )
    group.addoption(
        "--poolbridge-pgbouncer",
        action="store_true",
        default=None,
        help="the dburls are pgbouncers in transaction pool mode in front of PostgreSQL: "
        "pools run with statement_cache=False, connections are counted with SHOW "
        "CLIENTS/SERVERS (the URL's user must be a pgbouncer stats_users/admin_users)",
    )
    group.addoption(
        "--poolbridge-requirement",
        action="append",
        default=None,
        metavar="PATTERN",
        help="run only the rows whose requirement name matches this glob (repeatable; "
        "e.g. 'parity_*'); a glob starting with ! deselects the rows it matches ('!failover')",
    )
    group.addoption(
        "--poolbridge-ha-dburl",
        action="append",
        default=None,
        metavar="URL",
        help="a primary and a standby for the high-availability rows, as one multi-host URL "
        "(postgresql://u@h1:5432,h2:5432/db; which host is which is asked server-side); "
        "default: a replicated pair of the suite's own, started when first needed",
    )
    group.addoption(
        "--poolbridge-loop",
        default=None,
        choices=LOOPS,
        help="the event loop every suite test runs on (default: asyncio's own)",
    )
    parser.addini("poolbridge_adapter", "adapters for the conformance suite", type="linelist")
    parser.addini("poolbridge_dburl", "database URLs for the conformance suite", type="linelist")
    parser.addini("poolbridge_faults", "run the fault rows (kill backends)", type="bool")
    parser.addini("poolbridge_loop", "event loop of the suite: asyncio or uvloop", default="")
    parser.addini(
        "poolbridge_ha_dburl",
        "multi-host URLs of a primary and a standby for the high-availability rows",
        type="linelist",
    )
    parser.addini(
        "poolbridge_pgbouncer", "the dburls are pgbouncers (transaction pooling)", type="bool"
    )


def _option(config: pytest.Config, name: str) -> list[str]:
    cli = config.getoption(f"--poolbridge-{name.replace('_', '-')}")
    if cli:
        return _split(cli)
    return _split(config.getini(f"poolbridge_{name}"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "poolbridge_requirement(name): conformance row")
    config.addinivalue_line(
        "markers", "poolbridge_entry_points: run once per entry point of the adapter"
    )
    adapters = _option(config, "adapter")
    dburls = _option(config, "dburl")
    if not adapters and not dburls:
        return  # inert
    if not dburls:
        raise pytest.UsageError("--poolbridge-adapter needs at least one --poolbridge-dburl")
    faults_cli = config.getoption("--poolbridge-faults")
    faults = bool(faults_cli or config.getini("poolbridge_faults"))
    pgbouncer = bool(
        config.getoption("--poolbridge-pgbouncer") or config.getini("poolbridge_pgbouncer")
    )
    loop = config.getoption("--poolbridge-loop") or config.getini("poolbridge_loop") or "asyncio"
    if loop not in LOOPS:
        raise pytest.UsageError(f"poolbridge_loop: {loop!r} is not one of {', '.join(LOOPS)}")
    if loop != "asyncio" and importlib.util.find_spec(loop) is None:
        raise pytest.UsageError(f"--poolbridge-loop {loop}: {loop} is not installed")
    state = PluginState(adapters or ["all"], dburls, faults, pgbouncer)
    state.loop = loop
    # a multi-host URL has commas of its own: these split on whitespace only
    ha_cli = config.getoption("--poolbridge-ha-dburl") or config.getini("poolbridge_ha_dburl")
    state.ha_dburls = [u for v in ha_cli or [] for u in str(v).split()]
    from poolbridge.config.model import PoolConfig
    from poolbridge.errors import ConfigError

    for url in state.ha_dburls:
        try:
            PoolConfig(url=url)
        except ConfigError as exc:
            raise pytest.UsageError(f"--poolbridge-ha-dburl: {exc}") from exc
    config.stash[_STATE] = state
    config.pluginmanager.register(_CellRecorder(state), "poolbridge.testing.cells")
    # bring our own tests: instead of the testpaths / current directory, or next to the
    # paths given explicitly on the command line
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE_DIR)]
    elif str(SUITE_DIR) not in config.args:
        config.args.append(str(SUITE_DIR))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect the suite's modules even when ``python_files`` would not match them."""
    if _state(parent.config) is None or file_path.parent != SUITE_DIR:
        return None
    if not (file_path.name.startswith("test_") and file_path.suffix == ".py"):
        return None
    patterns = parent.config.getini("python_files")
    if any(fnmatch(file_path.name, p) for p in patterns):
        return None  # pytest's python plugin collects it already
    module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
    return module


def _state(config: pytest.Config) -> PluginState | None:
    return config.stash.get(_STATE, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--poolbridge-requirement PATTERN``: deselect the suite's other rows."""
    patterns = _split(config.getoption("--poolbridge-requirement", None))
    if not patterns or _state(config) is None:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        mark = item.get_closest_marker("poolbridge_requirement")
        name = None if mark is None else str(mark.args[0])
        wanted = name is None or selected(name, patterns)
        (keep if wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _requirement_of(definition: Any) -> str | None:
    for mark in getattr(definition, "pytestmark", []) or []:
        if mark.name == "poolbridge_requirement":
            return str(mark.args[0])
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "poolbridge_case" not in metafunc.fixturenames:
        return
    state = _state(metafunc.config)
    if state is None:
        metafunc.parametrize("poolbridge_case", [None], ids=["inactive"], indirect=True)
        return
    per_entry = metafunc.definition.get_closest_marker("poolbridge_entry_points") is not None
    params: list[Any] = []
    ids: list[str] = []
    for target in state.targets:
        points = state.entry_points(target.adapter_name) if per_entry else ["handle"]
        for point in points:
            params.append((target, point))
            ids.append(f"{target.backend}-{target.column}-{point}")
    metafunc.parametrize("poolbridge_case", params, ids=ids, indirect=True)


@pytest.fixture
def poolbridge_case(request: pytest.FixtureRequest) -> Case:
    """The column and entry point this suite test runs for; skips closed rows."""
    param = getattr(request, "param", None)
    state = _state(request.config)
    if param is None or state is None:
        pytest.skip("poolbridge plugin inactive: pass --poolbridge-adapter/--poolbridge-dburl")
    target, point = param
    from poolbridge.adapters.registry import get_adapter

    adapter = get_adapter(target.adapter_name)
    mark = request.node.get_closest_marker("poolbridge_requirement")
    if mark is None:
        raise pytest.UsageError(f"{request.node.nodeid} has no poolbridge_requirement mark")
    req = requirement(str(mark.args[0]))
    reason = closed_reason(adapter, target.backend, target.driver, req.name, via=target.via)
    if reason is not None:
        pytest.skip(f"closed: {reason}")
    if req.fault and not state.faults:
        pytest.skip(
            "fault row: enable with --faults (poolbridge check) or --poolbridge-faults (pytest)"
        )
    why = state.reachable(target.dburl)
    if why is not None:
        if in_ci():
            pytest.fail(f"{why} (CI=true: a missing server is a failure)", pytrace=False)
        pytest.skip(why)
    return Case(
        target=target,
        adapter=adapter,
        entry_point=point,
        faults=state.faults,
        loop=state.loop,
        pairs=state.pairs,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Tag each suite report with its matrix cell (survives pytest-xdist's serialization)."""
    report = yield
    callspec = getattr(item, "callspec", None)
    if _state(item.config) is None or callspec is None:
        return report
    param = callspec.params.get("poolbridge_case")
    mark = item.get_closest_marker("poolbridge_requirement")
    if isinstance(param, tuple) and mark is not None:
        target, point = param
        cell = {
            "backend": target.backend,
            "column": target.column,
            "adapter": target.adapter_name,
            "driver": target.driver,
            "requirement": str(mark.args[0]),
            "entry_point": point,
        }
        report.user_properties.append((_CELL_PROPERTY, cell))
    return report


class _CellRecorder:
    """Registered per active session: turns tagged reports into matrix cells."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record the call, or a failed/skipped setup or teardown, of every tagged report."""
        if not (report.when == "call" or report.outcome != "passed"):
            return
        for key, value in report.user_properties:
            if key == _CELL_PROPERTY and isinstance(value, dict):
                self.state.matrix.add_cell(
                    value["backend"],
                    value["column"],
                    value["requirement"],
                    Cell.from_report(report, value["entry_point"]),
                )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = _state(config)
    if state is not None:
        state.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _state(config)
    if state is None:
        return
    terminalreporter.write_sep("=", "poolbridge conformance matrix")
    terminalreporter.write_line(f"event loop: {state.loop}")
    for name, why in state.unavailable.items():
        terminalreporter.write_line(f"adapter {name!r} not installed: {why}")
    for note in state.notes:
        terminalreporter.write_line(note)
    for line in state.matrix.render(state.targets):
        terminalreporter.write_line(line)
