"""Installed package versions, as the provenance document and the export bundle record them."""

from __future__ import annotations

from importlib import metadata
from typing import Iterable


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each package, read from its metadata (nothing is imported).

    A package that is not installed maps to ``None`` rather than being left out: the record then says
    it was looked for, and two records list the same keys whatever each environment holds.
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
