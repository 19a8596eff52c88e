"""Where the report templates and assets live.

Installed, they are the package ``bundler.templates`` (pyproject maps the
top-level ``templates/`` folder to it); running from a checkout without an
install, the repository's ``templates/`` folder is used.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path


@functools.lru_cache(maxsize=1)
def templates_folder() -> Path:
    try:
        folder = Path(str(resources.files("bundler.templates")))
        if (folder / "report.css").is_file():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def asset_names() -> frozenset[str]:
    """Names of the files shipped beside the templates (no subfolders)."""
    return frozenset(p.name for p in templates_folder().iterdir() if p.is_file())


@functools.lru_cache(maxsize=32)
def asset_bytes(name: str) -> bytes:
    if name not in asset_names():
        raise KeyError(name)
    return (templates_folder() / name).read_bytes()
