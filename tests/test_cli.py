"""The CLI: doctor's checks and exit codes, python -m, settings and their documentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import backend_env

from lumiku_local import cli, config
from lumiku_local.config import SettingsError, load_settings
from lumiku_local.db import connection
from lumiku_local.models import User

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.backends
def test_doctor_passes_on_a_healthy_home(app_client, settings, capsys, monkeypatch):
    for name, value in backend_env(settings).items():  # doctor reads its settings as `lumiku` does
        monkeypatch.setenv(name, value)
    client = app_client()
    client.wait_generation(client.generate(client.project(), count=2)["generation"]["id"])
    client.__exit__(None, None, None)  # doctor binds the database anew: as its own process would
    assert cli.main(["doctor", "--home", str(settings.home)]) == 0
    out = capsys.readouterr().out
    names = ("data dir", "log", "database", "catalog", "device", "models", "queue", "ledger")
    for name in (*names, "files"):
        assert f"[ok] {name}" in out


@pytest.mark.backends  # the ledger check on either engine
def test_doctor_fails_when_the_books_do_not_balance(app_client, settings, capsys, monkeypatch):
    for name, value in backend_env(settings).items():
        monkeypatch.setenv(name, value)
    app_client().__exit__(None, None, None)
    with connection():
        User.update(credit_balance=User.credit_balance + 5).execute()
    assert cli.main(["doctor", "--home", str(settings.home)]) == 1
    assert "[FAIL] ledger" in capsys.readouterr().out


def test_doctor_fails_when_an_image_file_is_missing(app_client, settings, capsys):
    client = app_client()
    client.wait_generation(client.generate(client.project())["generation"]["id"])
    next(settings.files_dir.rglob("*.png")).unlink()
    assert cli.main(["doctor", "--home", str(settings.home)]) == 1
    assert "[FAIL] files" in capsys.readouterr().out


def test_doctor_fails_on_a_missing_home(tmp_path, capsys):
    assert cli.main(["doctor", "--home", str(tmp_path / "nowhere")]) == 1
    assert "[FAIL] data dir" in capsys.readouterr().out


def test_python_dash_m_is_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "lumiku_local", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("lumiku ")


def test_settings_precedence_flag_env_file_default(tmp_path):
    (tmp_path / "config.toml").write_text("workers = 3\nport = 9000\nlog_level = 'debug'\n")
    environ = {"LUMIKU_HOME": str(tmp_path), "LUMIKU_PORT": "9100", "LUMIKU_LOG_LEVEL": "warning"}
    settings = load_settings({"log_level": "error"}, environ=environ)
    assert settings.home == tmp_path.resolve()
    assert settings.workers == 3  # file
    assert settings.port == 9100  # environment beats file
    assert settings.log_level == "error"  # flag beats environment
    assert settings.lease_seconds == 30.0  # default
    assert load_settings({"home": str(tmp_path / "x")}, environ=environ).home.name == "x"


def test_bad_settings_fail_loudly(tmp_path):
    with pytest.raises(SettingsError, match="workers"):
        load_settings({"home": str(tmp_path)}, environ={"LUMIKU_WORKERS": "many"})
    (tmp_path / "config.toml").write_text("wrokers = 2\n")
    with pytest.raises(SettingsError, match="unknown settings: wrokers"):
        load_settings({"home": str(tmp_path)}, environ={})
    assert cli.main(["serve", "--home", str(tmp_path)]) == 2


def test_default_home_comes_from_platformdirs(monkeypatch):
    settings = load_settings({}, environ={})
    assert settings.home == config.default_home().resolve()
    assert "Lumiku" in str(settings.home)


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in config.setting_names() if f"`{name}`" not in readme]
    assert missing == []


def test_readme_opens_with_the_run_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = [block.split("\n", 1)[1] for block in readme.split("```")[1::2]][:2]
    assert "lumiku" in blocks[0] and "pip install" in blocks[0]
    assert blocks[1].strip() == "bash .ci/run"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest" in ci
