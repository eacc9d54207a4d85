"""`make install` stops on a Python outside requires-python, which uv alone would install into."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_python.py"
spec = importlib.util.spec_from_file_location("check_python", TOOL)
check_python = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_python)


@pytest.mark.parametrize(("version", "expected"), [
    ((3, 11, 0), True), ((3, 12, 9), True), ((3, 10, 14), False), ((3, 13, 0), False), ((4, 0, 0), False)])
def test_range_is_compared_on_the_parts_each_clause_names(version, expected):
    assert check_python.satisfies(version, ">=3.11,<3.13") is expected


def test_clauses_compare_zero_padded_releases_as_pep_440_does():
    assert check_python.satisfies((3, 11, 0), "==3.11")
    assert not check_python.satisfies((3, 11, 7), "==3.11")  # 3.11 means 3.11.0
    assert check_python.satisfies((3, 11, 7), ">3.11")
    assert not check_python.satisfies((3, 12, 1), "<=3.12")
    assert not check_python.satisfies((3, 12, 0), ">=3.11, !=3.12")
    assert check_python.satisfies((3, 12, 1), ">=3.11, !=3.12")


def test_a_clause_it_cannot_read_is_an_error_not_a_pass():
    with pytest.raises(ValueError, match="~=3.11"):
        check_python.satisfies((3, 11, 7), "~=3.11")


def test_the_projects_own_range_accepts_this_interpreter():
    """CI's Python is inside the range that pyproject.toml declares (else `make install` would have stopped)."""
    assert subprocess.run([sys.executable, str(TOOL)]).returncode == 0


def test_an_interpreter_outside_the_range_stops_with_the_range_and_the_fix(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nrequires-python = ">=3.0,<3.1"\n')
    result = subprocess.run([sys.executable, str(TOOL), str(pyproject)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "'>=3.0,<3.1'" in result.stderr and "make install PYTHON=" in result.stderr


def test_make_install_checks_the_interpreter_before_installing_anything(tmp_path):
    """The recipe of a fresh venv (make -n prints it) runs the check before pip or uv installs."""
    repo = TOOL.parents[1]
    recipe = subprocess.run(["make", "-n", "-C", str(repo), "install", f"VENV={tmp_path / 'venv'}"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    check = next(i for i, line in enumerate(recipe) if "tools/check_python.py" in line)
    install = next(i for i, line in enumerate(recipe) if " install " in line and "pip" in line)
    assert check < install


def test_it_agrees_with_packaging_on_every_clause_it_reads():
    """The check runs before packaging is installed, so it compares versions itself; here, where packaging is
    installed, both must give the same answer."""
    from packaging.specifiers import SpecifierSet

    clauses = [f"{op}{bound}" for op in (">=", ">", "<=", "<", "==", "!=") for bound in ("3.11", "3.12.1", "3", "4.0.0")]
    clauses += [">=3.11,<3.14", ">=3.10, !=3.12, <4"]
    versions = [(major, minor, micro) for major in (2, 3, 4) for minor in (0, 10, 11, 12, 13) for micro in (0, 1, 7)]
    for clause in clauses:
        for version in versions:
            expected = SpecifierSet(clause).contains(".".join(map(str, version)))
            assert check_python.satisfies(version, clause) is expected, (clause, version)
