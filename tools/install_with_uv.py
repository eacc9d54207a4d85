"""Install packages into this interpreter's environment with uv, under this machine's pip settings.

Why uv: pip downloads and unpacks one wheel after the other; TensorFlow's and torch's wheels alone
are ~2.4 GB unpacked, so `pip install -e '.[dev]'` took 75-95 s on 2 cores (34 s resolving and
downloading, 58 s unpacking). uv downloads and unpacks in parallel and links the files from its
cache: 23-45 s for the same packages (the spread is the download), same versions (both resolve to the
newest release the ranges in pyproject.toml allow).

Why the translation: uv does not read pip's configuration files or PIP_* variables, and a site's pip
settings are often what makes an install work there (a directory of local wheels, a mirror, a
constraint that keeps a CPU build of torch, a CA bundle). This reads them the way pip resolves them
(`pip config list`: files merged, then the [install] section over [global], then the environment)
and passes each one as uv's equivalent. A setting with no equivalent makes this exit with
CANNOT_TRANSLATE before anything is installed, and the Makefile installs with pip instead; so does
any failure of uv itself.

Run with the environment's interpreter (uv installs into it and lies beside it):

    .venv/bin/python tools/install_with_uv.py SETTINGS_PYTHON UV_CACHE_DIR PIP_INSTALL_ARGS...

SETTINGS_PYTHON is an interpreter whose pip reads the settings: the one the venv was made from (the
venv is made without pip, ~6 s saved; uv installs pip into it with the rest). It reads them as the venv's
own pip would (`pip --python`, which runs pip under the venv's interpreter): the machine's and the user's
files, the environment, and a `pip.conf` in the venv itself. Read from the outer interpreter's point of
view, that last file was missed, so a reinstall (after pyproject.toml changed) ignored a mirror or
constraint put in the venv, where `.venv/bin/pip install` honours it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

CANNOT_TRANSLATE = 3

# pip settings that change nothing about what gets installed.
IGNORED = {
    "disable-pip-version-check",
    "no-input",
    "no-color",
    "progress-bar",
    "quiet",
    "verbose",
    "root-user-action",
    "no-compile",  # the Makefile writes the bytecode the jobs need itself
    "compile",
    "no-warn-script-location",
    "config-file",  # PIP_CONFIG_FILE: its settings are among the ones read here
}
# pip setting -> uv option; every value of a list setting gets its own option.
AS_OPTION = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
# pip setting -> environment variable that uv reads.
AS_ENVIRONMENT = {
    "cert": "SSL_CERT_FILE",
    "timeout": "UV_HTTP_TIMEOUT",
}
# Two names pip accepts for one setting (PIP_DEFAULT_TIMEOUT and `timeout =` in a file): merged under the
# second, so that the environment still overrides the file.
ALIASES = {"default-timeout": "timeout"}
# Sections of `pip config list`, lowest precedence first.
SECTION_ORDER = ("global", "install", ":env:")


def pip_settings(python: str, environment_python: str | None = None) -> dict[str, str]:
    """The effective pip settings of `pip install` into ``environment_python``'s environment, as pip applies them.

    ``python`` runs pip; ``environment_python`` (default: the same) is the environment whose site file
    (``<prefix>/pip.conf``) counts, which needs no pip of its own (pip >= 22.3, as the Makefile's install).
    """
    target = [] if environment_python is None else ["--python", environment_python]
    listing = subprocess.run(
        [python, "-m", "pip", *target, "config", "list"], check=True, capture_output=True, text=True
    ).stdout
    by_section: dict[str, dict[str, str]] = {section: {} for section in SECTION_ORDER}
    for line in listing.splitlines():
        dotted, _, quoted = line.partition("=")
        section, _, name = dotted.rpartition(".")
        if section in by_section:
            by_section[section][ALIASES.get(name, name)] = ast.literal_eval(quoted)
    settings: dict[str, str] = {}
    for section in SECTION_ORDER:
        settings.update(by_section[section])
    return settings


def uv_arguments(settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv's options and environment for pip's settings; SystemExit(CANNOT_TRANSLATE) if one has none."""
    options: list[str] = []
    environment: dict[str, str] = {}
    for name, value in sorted(settings.items()):
        if name in IGNORED:
            continue
        if name in AS_OPTION:
            for item in value.split():
                options += [AS_OPTION[name], item]
            if name == "extra-index-url":
                # pip takes the best version found on any index; uv by default stops at the first
                # index that has the package, which could install other versions than pip would.
                options += ["--index-strategy", "unsafe-best-match"]
        elif name in AS_ENVIRONMENT:
            environment[AS_ENVIRONMENT[name]] = value
        elif name == "no-cache-dir":
            options.append("--no-cache")
        else:
            print(f"install_with_uv: pip setting {name!r} has no uv equivalent here", file=sys.stderr)
            raise SystemExit(CANNOT_TRANSLATE)
    return options, environment


def main(argv: list[str]) -> int:
    settings_python, cache_dir, install_args = argv[0], argv[1], argv[2:]
    options, environment = uv_arguments(pip_settings(settings_python, sys.executable))
    uv = Path(sys.executable).with_name("uv")
    command = [str(uv), "pip", "install", "--quiet", "--python", sys.executable, "--cache-dir", cache_dir]
    return subprocess.run(command + options + install_args, env={**os.environ, **environment}).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
