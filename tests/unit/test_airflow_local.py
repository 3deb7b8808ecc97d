"""The local Airflow launcher's env file: one documented way to reach the deployment from any shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.airflow_local import ENV_FILE, airflow_env, write_env_file


def test_sourcing_the_env_file_puts_airflow_and_riskline_on_path_with_this_home(tmp_path: Path):
    # Without it, `airflow backfill create` in a fresh shell read ~/airflow and asked for `airflow db migrate`
    # (a second, empty database), and riskline was not on PATH.
    home, data = tmp_path / "airflow_home", tmp_path / "data"
    path = write_env_file(home, data, 8123)
    assert path == home / ENV_FILE
    shown = subprocess.run(
        ["bash", "-c", f"source '{path}' && command -v airflow riskline && echo \"$AIRFLOW_HOME|$RISKLINE_DATA_ROOT|"
                       "$AIRFLOW__CORE__DAGS_FOLDER|$AIRFLOW__API__PORT\""],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    venv_bin = Path(sys.executable).parent
    assert shown[:2] == [str(venv_bin / "airflow"), str(venv_bin / "riskline")]
    expected = airflow_env(home, data, 8123)
    assert shown[2] == f"{home}|{data}|{expected['AIRFLOW__CORE__DAGS_FOLDER']}|8123"


def test_backfill_without_a_running_airflow_says_how_to_start_it(tmp_path: Path, capsys):
    import datetime as dt

    from tools.airflow_local import LocalAirflow, backfill, free_port

    af = LocalAirflow(home=tmp_path / "airflow_home", data_root=tmp_path / "data", port=free_port())
    (af.home).mkdir()
    (af.home / "simple_auth_manager_passwords.json.generated").write_text('{"admin": "x"}')
    assert backfill(af, dt.date(2026, 11, 20), dt.date(2026, 11, 22)) == 2
    assert "no local Airflow answers on http://127.0.0.1:" in capsys.readouterr().err
    assert backfill(af, dt.date(2026, 11, 22), dt.date(2026, 11, 20)) == 2
    assert "TO 2026-11-20 is before FROM 2026-11-22" in capsys.readouterr().err


@pytest.mark.slow  # starts the real Airflow components (~20 s); not skipped: `make test` runs it
def test_a_component_that_exits_is_started_again_and_one_that_keeps_exiting_is_reported(tmp_path: Path):
    """Airflow 3.3's scheduler on SQLite can exit on a race of its own; every run then waits for ever. The
    local deployment starts it again, as a process supervisor does in production, a bounded number of times."""
    import os
    import signal
    import time

    from tools import airflow_local
    from tools.airflow_local import LocalAirflow

    (tmp_path / "data").mkdir()
    with LocalAirflow(home=tmp_path / "airflow", data_root=tmp_path / "data") as af:
        first = af.processes["scheduler"]
        os.killpg(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while af.processes["scheduler"] is first and time.monotonic() < deadline:
            time.sleep(0.5)
        again = af.processes["scheduler"]
        assert again is not first and again.poll() is None and af.restarts == {"scheduler": 1}
        log = (tmp_path / "airflow" / "component-logs" / "scheduler.log").read_text(errors="replace")
        assert "scheduler exited with -9; starting it again (1 of 3)" in log
        assert af.running() and "started again 1 time(s)" in af.diagnose(token=af.token())
        af.restarts["scheduler"] = airflow_local.MAX_RESTARTS  # as if it kept exiting
        os.killpg(again.pid, signal.SIGKILL)
        again.wait(timeout=30)
        time.sleep(2 * airflow_local.SUPERVISE_EVERY_S)
        assert af.processes["scheduler"] is again and not af.running()
