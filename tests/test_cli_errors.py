"""Ordinary mistakes get one line on stderr and a status, never a traceback."""

from __future__ import annotations

import socket

import pytest

from ikefilter import cli

LINE = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1\n"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "INFO" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("missing", ["missing.log", "."])
def test_run_checks_every_input_before_reading_any(tmp_path, capsys, missing, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.txt"
    good.write_text(LINE)
    status, out, err = _run(capsys, "run", str(good), missing, str(good))
    assert status == 2
    assert out == ""  # not the first file written, then a crash
    assert _one_line(err).startswith(f"ikefilter run: {missing}: ")


def test_run_checks_the_stats_directory_first(tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text(LINE)
    status, out, err = _run(capsys, "run", "--stats", str(tmp_path / "no" / "s.json"), str(good))
    assert status == 2 and out == ""
    assert "no such directory" in _one_line(err)


@pytest.mark.parametrize("argv", [
    ["catalog", "show", "--catalog", "/nonexistent/ike.json"],
    ["catalog", "build", "/nonexistent/reference.txt"],
])
def test_a_missing_file_is_one_line(capsys, argv):
    status, _, err = _run(capsys, *argv)
    assert status == 1
    assert "No such file or directory" in _one_line(err)


def test_a_file_that_is_no_catalog_is_one_line(tmp_path, capsys):
    text = tmp_path / "lines.txt"
    text.write_text(LINE)
    status, _, err = _run(capsys, "generate", "--count", "1", "--catalog", str(text))
    assert status != 0
    assert "not a built catalog" in _one_line(err)


def test_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = _run(capsys, "forward", "--listen", f"127.0.0.1:{port}",
                              "--output", "/dev/null")
    assert status == 1
    assert "in use" in _one_line(err)


def test_an_edited_catalog_reaches_run(tmp_path, capsys):
    """The catalog section of the README, as written: edit the mapping, build, run with it."""
    from ikefilter import catalog

    source = catalog.data_dir()
    mapping = (source / "ike-ecs.toml").read_text()
    assert 'action = "ike-sa-established"' in mapping
    (tmp_path / "ike-ecs.toml").write_text(
        mapping.replace('action = "ike-sa-established"', 'action = "tunnel-up"', 1))
    reference = tmp_path / "reference.txt"
    reference.write_bytes((source / "cos-stream-log-reference-ike.txt").read_bytes())
    built = tmp_path / "site-ike.json"
    assert cli.main(["catalog", "build", str(reference), "-o", str(built)]) == 0
    lines = tmp_path / "in.txt"
    lines.write_text(LINE)
    capsys.readouterr()
    assert cli.main(["run", "--catalog", str(built), str(lines)]) == 0
    assert '"action":"tunnel-up"' in capsys.readouterr().out


def test_a_missing_catalog_for_run_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--catalog", "/nonexistent/ike.json"])
    assert "No such file or directory" in str(stop.value)


def test_a_negative_count_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "--count", "-5"])
    assert stop.value.code == 2
    assert "a count is 0 or more" in capsys.readouterr().err


def test_run_reads_a_device_or_a_pipe_given_by_name(capsys):
    status, out, _ = _run(capsys, "run", "/dev/null")
    assert status == 0 and out == ""
