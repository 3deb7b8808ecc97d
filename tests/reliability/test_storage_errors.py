"""``riskline ingest`` and ``riskline validate`` on a read-only data root and on a full disk (issue 14, class 15).

Both used to end in a Python traceback. Now each prints one line naming what failed, the state it left
(nothing published, or which partitions were already replaced) and the next step, and exits 1.

The faults are real, not mocked: a tmpfs remounted read-only gives EROFS even to root (tests run as root, so
``chmod`` would not stop a write), and a small tmpfs filled to the last byte gives ENOSPC. Mounting needs
CAP_SYS_ADMIN (the dev container has it); where it is missing the tests skip and say why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from small_drops import DAY, land_all

from pipelines.entry import cli
from pipelines.store import lake

Mount = Callable[..., Path]


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``tmpfs(path, size="4m")`` mounts a fresh tmpfs at ``path``; unmounted at teardown."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "8m") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def _fill(path: Path) -> None:
    """Write until the file system is full (ENOSPC), so the next write of any size fails."""
    with open(path / "filler", "wb", buffering=0) as fh:
        for chunk in (b"\0" * 65536, b"\0"):  # big chunks, then byte by byte into the last page
            try:
                while True:
                    fh.write(chunk)
            except OSError:
                pass


def _riskline(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["--data-root", str(root), *args, "--date", DAY.isoformat()])
    return code, capsys.readouterr().err


def _one_line(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert " -> " in err and all(f in err for f in fragments), err


@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
def test_ingest_says_in_one_line_that_nothing_was_published(tmp_path: Path, tmpfs: Mount, capsys, fault: str):
    root = tmpfs(tmp_path / "root")
    land_all(root)
    (_read_only if fault == "read_only" else _fill)(root)
    code, err = _riskline(capsys, root, "ingest")
    errno = "Read-only file system" if fault == "read_only" else "No space left on device"
    _one_line(err, f"dt={DAY.isoformat()}", errno, "nothing of dt=2026-11-20 was published", "rerun ingest")
    assert code == 1
    assert not (root / "curated").exists()


def test_ingest_failing_mid_publish_names_what_it_replaced_and_a_rerun_completes(
    tmp_path: Path, tmpfs: Mount, capsys
):
    root = tmp_path / "root"
    land_all(root)
    blocked = tmpfs(root / "curated" / "installments")  # accounts and behaviour publish first
    _read_only(blocked)
    code, err = _riskline(capsys, root, "ingest")
    _one_line(err, "Read-only file system", "already replaced: curated/accounts, quarantine/accounts, "
              "curated/behaviour, quarantine/behaviour;")
    assert code == 1
    assert lake.is_complete(lake.partition_dir(root, "curated", "behaviour", DAY))
    subprocess.run(["mount", "-o", "remount,rw", str(blocked)], check=True)
    code, err = _riskline(capsys, root, "ingest")
    assert code == 0, err
    for name in ("accounts", "behaviour", "installments", "payments"):
        assert lake.is_complete(lake.partition_dir(root, "curated", name, DAY))


@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
def test_validate_says_in_one_line_what_it_could_not_write(tmp_path: Path, tmpfs: Mount, capsys, fault: str):
    root = tmpfs(tmp_path / "root")
    land_all(root)
    code, err = _riskline(capsys, root, "ingest")
    assert code == 0, err
    (_read_only if fault == "read_only" else _fill)(root)
    code, err = _riskline(capsys, root, "validate")
    errno = "Read-only file system" if fault == "read_only" else "No space left on device"
    _one_line(err, f"validate dt={DAY.isoformat()}", errno, "riskline validate --date 2026-11-20")
    assert code == 1
