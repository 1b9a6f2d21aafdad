"""The tool configuration keeps up with the code: the import contracts name every engine and transport
package (a new one is held to the rules by being there, not by someone remembering to add it), and no
setting names a module or file that does not exist (a stale name silently checks nothing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import tomllib

from dbupdater.engines import registry as engines
from dbupdater.transports import registry as transports

ROOT = Path(__file__).resolve().parents[2]


def configuration() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def contracts() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = configuration()["tool"]["importlinter"]["contracts"]
    return found


def plugins(package: str, infrastructure: set[str]) -> set[str]:
    """Every engine or transport module or package, as the registries load them."""
    folder = ROOT / package.replace(".", "/")
    names = {path.stem for path in folder.glob("*.py")} | {path.name for path in folder.iterdir()
                                                            if (path / "__init__.py").is_file()}
    return {f"{package}.{name}" for name in names if name != "__init__" and name not in infrastructure}


@pytest.mark.parametrize(("package", "infrastructure"), [
    ("dbupdater.engines", engines.INFRASTRUCTURE), ("dbupdater.transports", transports.INFRASTRUCTURE)])
def test_every_engine_and_transport_is_named_in_the_import_contracts(package: str, infrastructure: set[str]) -> None:
    wanted = plugins(package, infrastructure)
    assert wanted, package
    independent = [c for c in contracts() if c["type"] == "independence"
                   and all(module.startswith(package + ".") for module in c["modules"])]
    assert len(independent) == 1, f"one independence contract for {package}"
    missing = wanted - set(independent[0]["modules"])
    assert not missing, f"add {sorted(missing)} to the contract {independent[0]['name']!r} in pyproject.toml"
    (core,) = [c for c in contracts() if c["name"].startswith("The core knows no engine")]
    missing = wanted - set(core["forbidden_modules"])
    assert not missing, f"add {sorted(missing)} to the contract {core['name']!r} in pyproject.toml"


def named_modules() -> set[str]:
    names: set[str] = set()
    for contract in contracts():
        for key in ("layers", "modules", "source_modules", "forbidden_modules"):
            for entry in contract.get(key, []):
                names.update(part.strip() for part in entry.split("|"))
    return names


@pytest.mark.parametrize("module", sorted(named_modules()))
def test_every_module_an_import_contract_names_exists(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, f"pyproject.toml names {module}, which does not exist"


def test_every_path_the_tools_name_exists() -> None:
    tool = configuration()["tool"]
    for package in tool["mypy"]["packages"]:
        assert importlib.util.find_spec(package) is not None, f"mypy checks {package}, which does not exist"
    for pattern in tool["ruff"]["lint"]["per-file-ignores"]:
        assert list(ROOT.glob(pattern)), f"ruff's per-file-ignores name {pattern}, which matches no file"
    for path in tool["pytest"]["ini_options"]["testpaths"]:
        assert (ROOT / path).is_dir(), path
    for package, patterns in tool["setuptools"]["package-data"].items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"package data {package}: {pattern} matches no file"
