"""The optional compiled build of the pool engine's hot path (mypyc).

The wheel hatchling builds from a source checkout or the sdist compiles the modules listed in
``src/poolbridge/engine/build.py`` (``COMPILED_MODULES``: the engine's checkout/checkin path
and the pool modules it calls per acquire) with mypyc when it can: mypy (which ships mypyc)
installs into the build environment, a C compiler and the Python headers are present, and
``POOLBRIDGE_PURE_PYTHON`` is not set. Otherwise, and whenever compiling fails for any
reason, it builds the pure-Python wheel: the install never fails because of this hook. The
compiled wheel keeps every ``.py`` file beside its extension module; the extension wins at
import. Editable installs and the sdist are always pure Python.

``python hatch_build.py DIR`` (what ``make compiled-test`` runs) builds the same modules into
DIR, a copy of ``src/`` with the extension modules beside the ``.py`` files, reusing the C
objects of the previous build when nothing changed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "src"
PACKAGE = "poolbridge"
#: set to 1 (or any non-empty value but 0) to build the pure-Python wheel on any machine
PURE_ENV = "POOLBRIDGE_PURE_PYTHON"
#: installed into the isolated build environment when a compiled build is possible
BUILD_REQUIRES = ["mypy>=2.4", "setuptools>=65"]
#: the shared library of the compiled modules: ``poolbridge/_core__mypyc.*.so``, inside the
#: package (a top-level name would be one more module in site-packages)
GROUP_NAME = "poolbridge._core"


def compiled_modules(source: Path = SOURCE) -> tuple[str, ...]:
    """``COMPILED_MODULES`` of ``poolbridge/engine/build.py`` (the one list), read without
    importing poolbridge."""
    namespace: dict[str, Any] = {}
    path = source / PACKAGE / "engine" / "build.py"
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    modules: tuple[str, ...] = namespace["COMPILED_MODULES"]
    return modules


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _c_compiler() -> str | None:
    """The C compiler setuptools would call (``CC``, else the one Python was built with)."""
    if sys.platform == "win32":
        return "msvc"  # found by setuptools at build time; a failure builds pure Python
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = cc.split()
    return shutil.which(words[0]) if words else None


def missing_for_compiled() -> str | None:
    """Why this machine builds pure Python without trying (None: try to compile)."""
    if pure_requested():
        return f"{PURE_ENV} is set"
    if sys.implementation.name != "cpython":
        return f"mypyc compiles for CPython only (this is {sys.implementation.name})"
    if _c_compiler() is None:
        return "no C compiler found (set CC to use one)"
    include = sysconfig.get_paths().get("include")
    if sys.platform != "win32" and not (include and Path(include, "Python.h").exists()):
        return f"no Python headers (Python.h) in {include}"
    return None


def compile_tree(root: Path, *, work: Path, quiet: bool = False) -> dict[Path, Path]:
    """Compile the modules of ``COMPILED_MODULES`` found under ``root`` (a copy of ``src/``)
    with mypyc. ``work`` keeps the generated C, the object files, the extension modules and
    mypy's cache between builds (an unchanged module is not compiled again). Returns each
    extension module built (under ``work``) -> its path in the package tree (relative)."""
    from mypyc.build import mypycify  # the build dependency, imported only when compiling
    from setuptools import Distribution

    modules = compiled_modules(root)
    paths = [str(Path(*m.split("."))) + ".py" for m in modules]
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    options = [
        # the compiled modules import only the standard library and poolbridge: third-party
        # packages are left out of the analysis (faster, and none need to be installed)
        "--no-site-packages",
        "--ignore-missing-imports",
        "--cache-dir",
        str(work / "mypy-cache"),
    ]
    with contextlib.chdir(root), _quiet(quiet):
        extensions = mypycify([*options, *paths], group_name=GROUP_NAME, target_dir=str(work / "c"))
        dist = Distribution({"name": "poolbridge-compiled", "ext_modules": extensions})
        build_ext: Any = dist.get_command_obj("build_ext")
        build_ext.build_lib = str(work / "lib")
        build_ext.build_temp = str(work / "obj")
        build_ext.ensure_finalized()
        build_ext.run()
        outputs = [Path(p).resolve() for p in build_ext.get_outputs()]
    built = {p: p.relative_to(work / "lib") for p in outputs}
    missing = [str(p) for p in built if not p.exists()]
    if missing:
        raise RuntimeError(f"mypyc reported extension modules that were not written: {missing}")
    return built


@contextlib.contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    """Silence the compiler's progress lines and setuptools' warnings (errors still raise
    and the compiler's own messages still reach stderr)."""
    if not quiet:
        yield
        return
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def sync_tree(source: Path, target: Path) -> None:
    """Make ``target/poolbridge`` a copy of ``source/poolbridge``'s ``.py`` files (stale ones
    removed, extension modules kept, so an unchanged build reuses them)."""
    src_pkg, dst_pkg = source / PACKAGE, target / PACKAGE
    wanted = {p.relative_to(src_pkg) for p in src_pkg.rglob("*") if p.is_file()}
    wanted = {p for p in wanted if "__pycache__" not in p.parts}
    if dst_pkg.exists():
        for p in dst_pkg.rglob("*"):
            rel = p.relative_to(dst_pkg)
            if p.is_file() and not _is_extension(p) and rel not in wanted:
                p.unlink()
    for rel in sorted(wanted):
        src, dst = src_pkg / rel, dst_pkg / rel
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            continue  # same bytes: keep the timestamp, so the build can be skipped
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _is_extension(path: Path) -> bool:
    return any(path.name.endswith(s) for s in (".so", ".pyd"))


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script (make compiled-test): hatchling is not needed
    BuildHookInterface = object  # type: ignore[misc,assignment]


class CompiledBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """hatchling's wheel hook: the compiled wheel when possible, else the pure one."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # No compiler (or the pure build requested): nothing to download.
        return [] if missing_for_compiled() else list(BUILD_REQUIRES)

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # editable installs run the sources themselves
        reason = missing_for_compiled()
        if reason is not None:
            self.app.display_info(f"poolbridge: pure-Python wheel ({reason})")
            return
        self._work = Path(tempfile.mkdtemp(prefix="poolbridge-mypyc-"))
        staging = self._work / "src"
        try:
            sync_tree(Path(self.root) / "src", staging)
            built = compile_tree(staging, work=self._work / "build", quiet=True)
        except (Exception, SystemExit) as exc:  # mypyc exits on a type error
            why = f"{type(exc).__name__}: {exc}"
            self.app.display_warning(
                f"poolbridge: compiling the engine with mypyc failed ({why[:300]}); "
                "building the pure-Python wheel instead"
            )
            return
        for path, rel in built.items():
            build_data["force_include"][str(path)] = rel.as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        names = ", ".join(rel.as_posix() for rel in built.values())
        self.app.display_info(f"poolbridge: compiled with mypyc: {names}")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="directory for the compiled copy of src/")
    parser.add_argument("--list", action="store_true", help="print the compiled modules")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(compiled_modules()))
        return 0
    reason = missing_for_compiled()
    if reason is not None:
        print(f"hatch_build.py: cannot compile: {reason}", file=sys.stderr)
        return 1
    target: Path = args.target
    sync_tree(SOURCE, target)
    built = compile_tree(target, work=target.parent / f"{target.name}-work", quiet=True)
    for path, rel in built.items():
        dst = target / rel
        if not dst.exists() or dst.read_bytes() != path.read_bytes():
            shutil.copy2(path, dst)
        print(f"compiled: {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
