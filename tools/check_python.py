"""Stop `make install` when this interpreter is outside pyproject.toml's `requires-python`.

Why a check of our own: pip refuses such an interpreter, but uv, which installs the packages
(tools/install_with_uv.py), ignores upper bounds of `requires-python` on purpose
(https://docs.astral.sh/uv/pip/compatibility/#requires-python-upper-bounds), so `make install` with a
Python newer than the range silently built an environment nobody had tested. The upper bound is the
newest Python the suite was run on, not a guess, so it is enforced here before anything is installed.

Run with the interpreter to check (the venv's, once made):

    .venv/bin/python tools/check_python.py [PYPROJECT]

Only the plain comparison clauses that a `requires-python` holds are read (`>=`, `>`, `<=`, `<`, `==`,
`!=`, numeric versions); any other clause is reported as unreadable rather than passed. Not
`packaging.specifiers`: the check runs in the new venv before anything (packaging included) is installed;
tests/test_check_python.py checks that it agrees with `SpecifierSet` on them.
"""

from __future__ import annotations

import operator
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: older than any range this project has allowed
    tomllib = None

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
             "==": operator.eq, "!=": operator.ne}
CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$")


def satisfies(version: tuple[int, ...], requires_python: str) -> bool:
    """Whether ``version`` (e.g. ``(3, 12, 1)``) meets every clause of ``requires_python``.

    As PEP 440 compares release versions: the shorter one is padded with zeros, so ``3.13`` means
    3.13.0 (``<3.13`` rejects 3.13.0, ``==3.11`` accepts 3.11.0 but not 3.11.7, ``>3.11`` accepts 3.11.7).
    """
    for clause in requires_python.split(","):
        match = CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"cannot read the clause {clause.strip()!r} of requires-python {requires_python!r}")
        symbol, bound_text = match.groups()
        bound = tuple(int(part) for part in bound_text.split("."))
        width = max(len(version), len(bound))
        if not OPERATORS[symbol](_padded(version, width), _padded(bound, width)):
            return False
    return True


def _padded(release: tuple[int, ...], width: int) -> tuple[int, ...]:
    return release + (0,) * (width - len(release))


def main(argv: list[str]) -> int:
    pyproject = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "pyproject.toml"
    version = ".".join(str(part) for part in sys.version_info[:3])
    if tomllib is None:
        print(f"make install: Python {version} at {sys.executable} is too old; this project needs Python 3.11 or newer.",
              file=sys.stderr)
        return 1
    requires_python = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    if satisfies(tuple(sys.version_info[:3]), requires_python):
        return 0
    print(f"make install: Python {version} at {sys.executable} is outside requires-python {requires_python!r} "
          f"({pyproject}). Remove .venv and run `make install PYTHON=python3.11` (or another Python in that range).",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
