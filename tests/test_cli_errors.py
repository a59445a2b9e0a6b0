"""Ordinary mistakes get one line on stderr and a distinct status, never a traceback.

Each mistake is made through the real command (``python -m ikefilter``), as a person would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from conftest import free_port, ikefilter_cmd

from ikefilter import catalog, cli, exits

LINE = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1\n"
ROOT = Path(__file__).resolve().parent.parent


def one_line(err: bytes) -> str:
    """The one line a mistake writes; the counts a command logs at exit are not it."""
    text = err.decode()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if not line.startswith("ikefilter: INFO:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory with the files the mistakes use."""
    d = tmp_path_factory.mktemp("site")
    (d / "good.txt").write_text(LINE)
    (d / "good2.txt").write_text(LINE)
    (d / "notes.txt").write_text("not a catalog\n")
    (d / "reference.txt").write_bytes((catalog.data_dir() / "cos-stream-log-reference-ike.txt")
                                      .read_bytes())
    (d / "mapped").mkdir()
    (d / "mapped" / "ike-ecs.toml").write_bytes((catalog.data_dir() / "ike-ecs.toml")
                                                .read_bytes())
    (d / "mapped" / "garbled.txt").write_text("This is no Log Reference chapter.\n")
    (d / "mapped" / "latin1.txt").write_bytes(b"Chapitre \xe9\n")
    (d / "enum.toml").write_text('[redact]\nip = "hmak"\n')
    (d / "typo.toml").write_text('[redact]\nidentiy = "hmac"\n')
    (d / "site.msgpack").write_bytes(b"".join(msgspec.msgpack.encode({"log": LINE.strip()})
                                              for _ in range(3)))
    return d


# (argv, stdin file or None, status, words the line must hold)
MISTAKES = {
    "run, a missing file": (["run", "missing.log"], None, exits.INPUT,
                            ["ikefilter run: missing.log: no such file"]),
    "run, a directory": (["run", "mapped"], None, exits.INPUT,
                         ["ikefilter run: mapped: is a directory"]),
    "run, a missing --stats directory": (["run", "--stats", "nope/s.json", "good.txt"], None,
                                         exits.OUTPUT, ["ikefilter run: --stats nope/s.json: "
                                                        "no such directory"]),
    "run, a --stats that is a directory": (["run", "--stats", "mapped", "good.txt"], None,
                                           exits.OUTPUT, ["ikefilter run: --stats mapped: is a "
                                                          "directory"]),
    "forward, a missing --stats directory": (["forward", "--listen", "127.0.0.1:0", "--output",
                                              "out.jsonl", "--stats", "nope/s.json"], None,
                                             exits.OUTPUT, ["ikefilter forward: --stats "
                                                            "nope/s.json: no such directory"]),
    "run, a missing catalog": (["run", "--catalog", "nope.json", "good.txt"], None,
                               exits.INPUT, ["nope.json", "No such file or directory"]),
    "run, a text file as catalog": (["run", "--catalog", "notes.txt", "good.txt"], None,
                                    exits.INPUT, ["notes.txt: not a built catalog"]),
    "run, a typo in the config": (["run", "--config", "typo.toml", "good.txt"], None,
                                  exits.USAGE, ["typo.toml:2: redact.identiy: unknown key"]),
    "run, a choice not offered": (["run", "--config", "enum.toml", "good.txt"], None,
                                  exits.USAGE, ["enum.toml:2: redact.ip: Invalid enum value "
                                                "'hmak' (allowed: keep, mask, hmac, truncate, "
                                                "cryptopan)"]),
    "run, a missing config": (["run", "--config", "nope.toml", "good.txt"], None, exits.USAGE,
                              ["nope.toml: cannot read the site config"]),
    "run, msgpack mode fed text": (["run", "--input-format", "msgpack"], "good.txt",
                                   exits.INPUT, ["not a msgpack stream", "not a map"]),
    "run, line mode fed msgpack": (["run"], "site.msgpack", exits.INPUT,
                                   ["add --input-format msgpack"]),
    "run, a file of msgpack": (["run", "good.txt", "site.msgpack"], None, exits.INPUT,
                               ["site.msgpack: input starts with a msgpack map"]),
    "run, msgpack mode given a text file": (["run", "--input-format", "msgpack",
                                             "site.msgpack", "good.txt"], None, exits.INPUT,
                                            ["good.txt: not a msgpack stream"]),
    "run, an unknown option": (["run", "--colour"], None, exits.USAGE,
                               ["ikefilter run: unrecognized arguments: --colour",
                                "ikefilter run --help"]),
    "run, a format not offered": (["run", "--input-format", "csv"], None, exits.USAGE,
                                  ["ikefilter run: argument --input-format: invalid choice"]),
    "no command": ([], None, exits.USAGE, ["ikefilter: the following arguments are required"]),
    "catalog build, a missing source": (["catalog", "build", "nope.txt"], None, exits.INPUT,
                                        ["ikefilter catalog build: nope.txt: No such file"]),
    "catalog build, no mapping beside the source": (
        ["catalog", "build", "reference.txt"], None, exits.INPUT,
        ["ike-ecs.toml: No such file"]),
    "catalog build, malformed text": (["catalog", "build", "mapped/garbled.txt"], None,
                                      exits.INPUT, ["mapped/garbled.txt with mapping",
                                                    "no chapter heading"]),
    "catalog build, text not UTF-8": (["catalog", "build", "mapped/latin1.txt"], None,
                                      exits.INPUT, ["mapped/latin1.txt: not UTF-8 text"]),
    "catalog build, output directory missing": (
        ["catalog", "build", "reference.txt", "--mapping", "mapped/ike-ecs.toml",
         "-o", "nope/ike.json"], None, exits.OUTPUT, ["nope/ike.json: No such file"]),
    "catalog show, a missing catalog": (["catalog", "show", "--catalog", "nope.json"], None,
                                        exits.INPUT, ["ikefilter catalog show: nope.json: No "
                                                      "such file"]),
    "catalog show, an unknown ID": (["catalog", "show", "530", "9999"], None, exits.USAGE,
                                    ["no message with ID 9999"]),
    "generate, a text file as catalog": (["generate", "--count", "1", "--catalog",
                                          "notes.txt"], None, exits.INPUT,
                                         ["notes.txt: not a built catalog"]),
    "generate, a negative count": (["generate", "--count", "-5"], None, exits.USAGE,
                                   ["--count: -5: a count is 0 or more"]),
    "forward, output directory missing": (["forward", "--listen", "127.0.0.1:0", "--output",
                                           "nope/dir/x"], None, exits.OUTPUT,
                                          ["ikefilter forward: nope/dir/x: No such file"]),
    "forward, workers on port 0": (["forward", "--listen", "127.0.0.1:0", "--workers", "2",
                                    "--output", "out.jsonl"], None, exits.USAGE,
                                   ["--workers needs a fixed port"]),
    "plugins, a module not there": (["plugins", "--plugin", "no_such_plugin_module"], None,
                                    exits.USAGE, ["plugin 'no_such_plugin_module': cannot "
                                                  "import"]),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_line_and_its_status(site, mistake):
    argv, stdin, status, words = MISTAKES[mistake]
    data = (site / stdin).read_bytes() if stdin else b""
    proc = ikefilter_cmd(*argv, cwd=site, stdin=data)
    line = one_line(proc.stderr)
    for word in words:
        assert word in line
    assert proc.returncode == status, line
    assert proc.stdout == b""


def test_run_reports_a_missing_file_before_reading_any(site):
    proc = ikefilter_cmd("run", "good.txt", "nope.txt", "good2.txt", cwd=site)
    assert proc.returncode == exits.INPUT
    assert proc.stdout == b""  # not the first file written, then a stop
    assert one_line(proc.stderr) == "ikefilter run: nope.txt: no such file"


def test_a_port_in_use_is_one_line(site):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = ikefilter_cmd("forward", "--listen", f"127.0.0.1:{port}", "--output", os.devnull,
                         cwd=site)
    assert proc.returncode == exits.OUTPUT
    assert "in use" in one_line(proc.stderr)


def test_mmexternal_never_writes_a_usage_mistake_into_rsyslogs_pipe(site, tmp_path):
    """rsyslog reads the child's stderr as replies: a bad option is said in the log file."""
    proc = ikefilter_cmd("mmexternal", "--reply", "json", cwd=site, stdin=b"{}\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (exits.USAGE, b"", b"")
    log = tmp_path / "mm.log"
    proc = ikefilter_cmd("mmexternal", "--log-file", str(log), "--colour", cwd=site)
    assert (proc.returncode, proc.stdout, proc.stderr) == (exits.USAGE, b"", b"")
    assert log.read_text() == ("ikefilter mmexternal: unrecognized arguments: --colour "
                               "(see 'ikefilter mmexternal --help')\n")


def test_forward_workers_refuse_a_missing_stats_directory_once(site):
    proc = ikefilter_cmd("forward", "--listen", f"127.0.0.1:{free_port()}", "--workers", "2",
                     "--output", "out.jsonl", "--stats", "nope/s.json", cwd=site)
    assert one_line(proc.stderr) == "ikefilter forward: --stats nope/s.json: no such directory"
    assert proc.returncode == exits.OUTPUT


def test_mmexternal_refuses_a_missing_stats_directory_before_the_first_message(site, tmp_path):
    """Said in its log file (stderr is rsyslog's reply pipe), and no message answered."""
    log = tmp_path / "mm.log"
    proc = ikefilter_cmd("mmexternal", "--log-file", str(log), "--stats", "nope/s.json", cwd=site,
                     stdin=b'{"msg": "x"}\n')
    assert (proc.returncode, proc.stdout, proc.stderr) == (exits.OUTPUT, b"", b"")
    assert log.read_text() == "ikefilter mmexternal: --stats nope/s.json: no such directory\n"
    proc = ikefilter_cmd("mmexternal", "--stats", "nope/s.json", cwd=site, stdin=b'{"msg": "x"}\n')
    assert (proc.returncode, proc.stdout, proc.stderr) == (exits.OUTPUT, b"", b"")


# (argv before --stats, stdin): every command that takes --stats
STATS_COMMANDS = {
    "run": (["run", "good.txt"], b""),
    "forward": (["forward", "--listen", "127.0.0.1:0", "--output", "out.jsonl"], b""),
    "mmexternal": (["mmexternal"], b'{"msg": "x"}\n'),
}


@pytest.fixture
def locked(tmp_path) -> Iterator[Path]:
    """A directory no file can be made in: read-only, or for root (who writes in any
    directory) immutable."""
    d = tmp_path / "locked"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o500)
        yield d
        d.chmod(0o700)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(d)], capture_output=True).returncode != 0:
        pytest.skip("root writes in any directory, and chattr cannot lock one here")
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-i", str(d)], check=True)


@pytest.mark.parametrize("command", list(STATS_COMMANDS))
def test_a_stats_file_in_a_directory_not_writable_is_refused_at_start(site, tmp_path, locked,
                                                                        command):
    argv, stdin = STATS_COMMANDS[command]
    log = tmp_path / "mm.log"
    extra = ["--log-file", str(log)] if command == "mmexternal" else []
    proc = ikefilter_cmd(*argv, *extra, "--stats", str(locked / "s.json"), cwd=site, stdin=stdin)
    said = log.read_text() if command == "mmexternal" else one_line(proc.stderr) + "\n"
    assert said == (f"ikefilter {command}: --stats {locked / 's.json'}: directory {locked} "
                    "not writable\n")
    assert (proc.returncode, proc.stdout) == (exits.OUTPUT, b"")


def test_the_syslog_ng_parser_refuses_to_start_with_a_missing_stats_directory(tmp_path, caplog):
    from ikefilter.adapters import syslogng

    parser = syslogng.Parser()
    assert parser.init({"stats": str(tmp_path / "nope" / "s.json")}) is False
    assert f"--stats {tmp_path / 'nope' / 's.json'}: no such directory" in caplog.text


def test_every_status_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in ("USAGE", "INPUT", "OUTPUT", "FAILED"):
        assert f"| `{getattr(exits, name)}` |" in readme, name


def test_an_edited_catalog_reaches_run(tmp_path, capsys):
    """The catalog section of the README, as written: edit the mapping, build, run with it."""
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


def test_run_reads_a_device_or_a_pipe_given_by_name(capsys):
    status = cli.main(["run", "/dev/null"])
    out, _ = capsys.readouterr()
    assert status == 0 and out == ""
