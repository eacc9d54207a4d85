"""`make install` hands pip's settings to uv: the same wheel sources, constraints and certificates, or pip."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "install_with_uv.py"
spec = importlib.util.spec_from_file_location("install_with_uv", TOOL)
install_with_uv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_with_uv)


@pytest.fixture
def pip_config(tmp_path, monkeypatch):
    """A pip configuration file loaded after the machine's own, with no PIP_* variables but the ones a test sets."""
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "pip.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    return config


def test_settings_follow_pips_precedence(pip_config, monkeypatch):
    pip_config.write_text(
        "[global]\nfind-links = /from-global\nextra-index-url =\n    https://a.example/simple\n"
        "    https://b.example/simple\ntimeout = 10\n[install]\nfind-links = /from-install\n"
    )
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "77")
    settings = install_with_uv.pip_settings(sys.executable)
    assert settings["find-links"] == "/from-install"  # [install] over [global]
    assert settings["timeout"] == "77"  # the environment over the files, under either of pip's names
    options, environment = install_with_uv.uv_arguments(settings)
    assert options[options.index("--find-links") + 1] == "/from-install"
    extra = [options[i + 1] for i, option in enumerate(options) if option == "--extra-index-url"]
    assert extra == ["https://a.example/simple", "https://b.example/simple"]
    assert options[options.index("--index-strategy") + 1] == "unsafe-best-match"
    assert environment["UV_HTTP_TIMEOUT"] == "77"


def test_each_setting_maps_to_uvs_equivalent():
    options, environment = install_with_uv.uv_arguments(
        {
            "index-url": "https://mirror.example/simple",
            "constraint": "/etc/c1.txt /etc/c2.txt",
            "cert": "/etc/ca.pem",
            "no-cache-dir": "1",
            "disable-pip-version-check": "1",
            "progress-bar": "off",
        }
    )
    assert options == [
        "--constraint", "/etc/c1.txt", "--constraint", "/etc/c2.txt",
        "--index-url", "https://mirror.example/simple",
        "--no-cache",
    ]  # fmt: skip
    assert environment == {"SSL_CERT_FILE": "/etc/ca.pem"}
    assert "--index-strategy" not in options  # one index: nothing to choose between


def test_a_setting_uv_cannot_honour_leaves_the_install_to_pip(capsys):
    with pytest.raises(SystemExit) as stopped:
        install_with_uv.uv_arguments({"find-links": "/w", "only-binary": ":all:"})
    assert stopped.value.code == install_with_uv.CANNOT_TRANSLATE
    assert "'only-binary'" in capsys.readouterr().err


def test_a_pip_conf_inside_the_environment_is_read_though_the_environment_has_no_pip(pip_config, tmp_path):
    """The venv is made without pip and its settings read by the outer interpreter's pip: a reinstall missed
    a ``pip.conf`` put in the venv (a mirror, a constraint) that the venv's own pip would honour."""
    import venv

    environment = tmp_path / "env"
    venv.create(environment, with_pip=False)
    (environment / "pip.conf").write_text("[global]\nfind-links = /from-the-environment\n")
    python = str(environment / "bin" / "python")
    assert install_with_uv.pip_settings(sys.executable).get("find-links") != "/from-the-environment"
    assert install_with_uv.pip_settings(sys.executable, python)["find-links"] == "/from-the-environment"
