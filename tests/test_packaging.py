"""`pip install .` (not editable) ships the packages, templates and data, and the CLI runs elsewhere."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# A Python warning category in the build's output (``BuildBackendWarning: Package 'x' is absent from
# the `packages` configuration``, ``SetuptoolsDeprecationWarning: ...``); pip's own ``WARNING:`` lines
# (about this machine's package index) are not the project's.
BUILD_WARNING = re.compile(r"\b[A-Z]\w*Warning: .*")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel `pip wheel .` builds, and everything the build printed."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    return next(out.glob("fedledger-*.whl")), done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(build: tuple[Path, str]) -> Path:
    return build[0]


def test_the_build_prints_no_warning(build: tuple[Path, str]) -> None:
    """`make demo` (its install) printed one "Package 'collector.samples.ci' is absent from the
    `packages` configuration" warning per data folder: setuptools took every file under a package
    folder as data (include-package-data) and each data folder for a package left out."""
    warnings = sorted(set(BUILD_WARNING.findall(build[1])))
    assert not warnings, warnings


def _shipped_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


def test_the_wheel_holds_every_module_template_and_data_file(wheel: Path) -> None:
    """Nothing under the packages' folders is left out: a module in a new subpackage, a template or
    a data file of a new kind would otherwise be missing from an installed fedledger only."""
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = [p for package in ("collector", "bundler") for p in _shipped_files(REPO / package) if p.suffix == ".py"]
    wanted = {p.relative_to(REPO).as_posix() for p in modules + _shipped_files(REPO / "bundler" / "data")}
    wanted |= {f"bundler/templates/{p.relative_to(REPO / 'templates').as_posix()}" for p in _shipped_files(REPO / "templates")}
    wanted.add("collector/samples/__init__.py")
    assert {"bundler/data/controls.json", "bundler/templates/report.css", "collector/sources/ci.py"} <= wanted
    missing = sorted(wanted - names)
    assert not missing, f"not in the wheel: {missing}"


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("collector/ledger.py", "collector/cli.py", "bundler/ledger_verify.py", "bundler/templates/__init__.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "fedledger = collector.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_cli_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); "
        "import collector, bundler.templates, importlib.resources as r; "
        f"assert collector.__file__.startswith({str(target)!r}), collector.__file__; "
        "print(sorted(p.name for p in r.files('bundler.templates').iterdir()))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "__init__.py" in done.stdout
    cli = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); from collector.cli import main; sys.argv=['fedledger', '--ledger', 'x.db', 'init', '--origin', 'example.gov/pkg']; main()"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert (elsewhere / "x.db").exists() and (elsewhere / "x.key").exists()


def test_wheel_ships_every_sample_the_demo_reads_and_a_spdx_license(wheel: Path) -> None:
    """`fedledger demo` from an installed wheel reads collector/samples: every file of the sample
    sources and the config is in the wheel (samples/make and samples/package are the test-asset
    scripts and malformed bundles, not shipped)."""
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    samples = REPO / "samples"
    wanted = [samples / "fedledger.toml"] + [p for folder in ("vault", "ci", "cloudtrail", "attestations", "policies")
                                            for p in sorted((samples / folder).rglob("*")) if p.is_file()]
    missing = [str(p.relative_to(samples)) for p in wanted
               if f"collector/samples/{p.relative_to(samples).as_posix()}" not in names]
    assert not missing, f"not in the wheel: {missing[:10]}"
    metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
