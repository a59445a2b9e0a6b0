"""A real Fluent Bit on both sides of ``ikefilter forward``, authenticated with a shared key.

The binary is taken from the environment variable ``FLUENT_BIT`` (``.ci/run`` sets it when
the engine is beside the checkout); without it these tests are skipped. Fluent Bit sends its
``Shared_Key`` salt (out_forward PING) and nonce (in_forward HELO) as 16 random bytes in a
msgpack str, so these tests are what shows the digest is taken over the bytes as sent.

Every config is checked with ``fluent-bit --dry-run`` before it runs. Fluent Bit may reorder
records across chunks: outputs are compared as multisets.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import (
    DOC,
    Daemon,
    after_line,
    check_document,
    child_env,
    count_lines,
    emit_lines,
    free_port,
    read_json_lines,
    reference_documents,
    wait_for,
)

FLUENT_BIT = os.environ.get("FLUENT_BIT", "")
KEY = "clavister-e2e-shared-key"
KEY_VAR = "FORWARD_SHARED_KEY"  # read by ikefilter and by Fluent Bit's config
COUNT = 2000

needs_fluent_bit = pytest.mark.skipif(
    not (FLUENT_BIT and os.path.isfile(FLUENT_BIT) and os.access(FLUENT_BIT, os.X_OK)),
    reason="FLUENT_BIT is unset or not an executable file: set it to a Fluent Bit binary "
    "(.ci/run uses ../shared/engines/fluent-bit/fluent-bit when it exists)",
)

HANDSHAKE_FAILURE = re.compile(r"forward handshake (failed|refused)")

# Flush often so that the tests poll, not sleep.
SERVICE = """\
[SERVICE]
    Flush        0.2
    Grace        1
    Log_Level    info
"""

# The tailed lines (each under "log") to ikefilter, with out_forward's shared key.
TAIL_TO_FORWARD = SERVICE + """
[INPUT]
    Name            tail
    Path            {lines}
    Read_from_Head  true
    Tag             clavister

[OUTPUT]
    Name                  forward
    Match                 clavister
    Host                  127.0.0.1
    Port                  {ikefilter_port}
    Shared_Key            ${{FORWARD_SHARED_KEY}}
    Self_Hostname         fluent-bit
    Require_ack_response  true
    Retry_Limit           no_limits
"""

# ikefilter's documents in through in_forward with the shared key; out_file writes each
# ECS document as one JSON line.
FORWARD_TO_FILE = """
[INPUT]
    Name           forward
    Listen         127.0.0.1
    Port           {fluent_bit_port}
    Shared_Key     ${{FORWARD_SHARED_KEY}}
    Self_Hostname  fluent-bit

[OUTPUT]
    Name    file
    Match   ecs.*
    Path    {out_dir}
    File    ecs.jsonl
    Format  plain
"""


# -- processes -------------------------------------------------------------------------------


# The values docs/integrations.md shows in the config it quotes (the round trip's).
DOC_VALUES = {"lines": "/var/log/clavister/ike.log", "ikefilter_port": 24224,
              "fluent_bit_port": 24225, "out_dir": "/var/log/ecs"}


def start_fluent_bit(tmp_path: Path, name: str, config: str, key: str = KEY) -> Daemon:
    """Write the config, check it with ``--dry-run``, and start Fluent Bit in the foreground;
    the config reads the shared key from the environment, as ikefilter does."""
    conf = tmp_path / f"{name}.conf"
    conf.write_text(config, "utf-8")
    env = {**os.environ, KEY_VAR: key}
    check = subprocess.run([FLUENT_BIT, "-c", str(conf), "--dry-run"], capture_output=True,
                           text=True, timeout=20, check=False, env=env)
    said = check.stdout + check.stderr
    assert check.returncode == 0 and "configuration test is successful" in said, (
        f"fluent-bit --dry-run rejected {conf.name}:\n{said[-3000:]}"
    )
    return Daemon([FLUENT_BIT, "-c", str(conf)], tmp_path / f"{name}.log", env=env,
                  cwd=tmp_path)


def start_ikefilter(tmp_path: Path, port: int, key: str, *target: str,
                    name: str = "ikefilter") -> Daemon:
    """``ikefilter forward`` on 127.0.0.1:PORT; the key is passed in the environment only."""
    env = {**child_env(), KEY_VAR: key}
    cmd = [sys.executable, "-m", "ikefilter", "forward", "--listen", f"127.0.0.1:{port}",
           *target, "--stats", str(tmp_path / f"{name}-stats.json")]
    daemon = Daemon(cmd, tmp_path / f"{name}.log", env=env, cwd=tmp_path)
    daemon.wait_listening(port, "ikefilter forward", timeout=15)
    return daemon


def stop_all(*daemons: Daemon | None) -> None:
    """Stop each daemon by its PID, last started first, whatever happened before."""
    for daemon in reversed(daemons):
        if daemon is not None:
            daemon.stop(timeout=10)


def write_lines(path: Path, count: int, shape: str = "bracketed") -> list[str]:
    """``ikefilter generate`` lines of one text shape, written to ``path``."""
    result = subprocess.run(
        [sys.executable, "-m", "ikefilter", "generate", "--count", str(count), "--shape", shape],
        capture_output=True, text=True, timeout=60, check=True, env=child_env(),
    )
    lines = result.stdout.splitlines()
    assert len(lines) == count
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return lines


def handshake_failures(daemon: Daemon) -> list[str]:
    return [line for line in daemon.log().splitlines() if HANDSHAKE_FAILURE.search(line)]


def assert_exactly_once(docs: list[dict], lines: list[str]) -> None:
    """Every line arrived once, as its ECS document (in any order)."""
    originals = Counter(doc["event"]["original"] for doc in docs)
    expected = Counter(lines)
    missing, extra = expected - originals, originals - expected
    assert not missing and not extra, (
        f"{sum(missing.values())} lines missing, {sum(extra.values())} extra; e.g. "
        f"{list(missing)[:2]} {list(extra)[:2]}"
    )
    references = dict(zip(lines, reference_documents(lines), strict=True))
    for doc in docs:
        check_document(doc, references[doc["event"]["original"]])


# -- Fluent Bit -> ikefilter -----------------------------------------------------------------


@needs_fluent_bit
def test_fluent_bit_out_forward_shared_key(tmp_path: Path) -> None:
    """tail -> out_forward (Shared_Key) -> ikefilter forward --shared-key-env -> JSON lines:
    every line exactly once, as its ECS document; no handshake failure on either side."""
    lines = write_lines(tmp_path / "ike.log", COUNT)
    out = tmp_path / "ecs.jsonl"
    port = free_port()
    ikefilter = fluent_bit = None
    try:
        ikefilter = start_ikefilter(tmp_path, port, KEY, "--output", str(out),
                                    "--shared-key-env", KEY_VAR)
        start = time.monotonic()
        fluent_bit = start_fluent_bit(tmp_path, "fluent-bit", TAIL_TO_FORWARD.format(
            lines=tmp_path / "ike.log", ikefilter_port=port))
        ikefilter.wait_lines(out, COUNT, timeout=20,
                             check=lambda: _no_handshake_failure(ikefilter))
        elapsed = time.monotonic() - start
        time.sleep(0.5)  # a duplicate (a chunk sent again) would land now
        assert fluent_bit.stop() == 0, fluent_bit.log()[-3000:]
        assert ikefilter.stop() == 0, ikefilter.log()[-3000:]
    finally:
        stop_all(ikefilter, fluent_bit)
    assert_delivered(out, lines, ikefilter, fluent_bit)
    print(f"\nFluent Bit -> ikefilter (Shared_Key): {COUNT} events in {elapsed:.2f} s")


@needs_fluent_bit
def test_fluent_bit_out_forward_wrong_key_delivers_nothing(tmp_path: Path) -> None:
    """A Fluent Bit whose Shared_Key differs is refused at the handshake: nothing is written."""
    write_lines(tmp_path / "ike.log", 50)
    out = tmp_path / "ecs.jsonl"
    port = free_port()
    ikefilter = fluent_bit = None
    try:
        ikefilter = start_ikefilter(tmp_path, port, KEY, "--output", str(out),
                                    "--shared-key-env", KEY_VAR)
        fluent_bit = start_fluent_bit(tmp_path, "fluent-bit", TAIL_TO_FORWARD.format(
            lines=tmp_path / "ike.log", ikefilter_port=port), key="not-" + KEY)
        # Two refused attempts: Fluent Bit has tried again after the first. (A repeated
        # warning is logged at most once per 10 s, so the second line comes after that.)
        wait_for(lambda: len(handshake_failures(ikefilter)) >= 2, 45,
                 "ikefilter to refuse Fluent Bit's handshake twice", proc=ikefilter.proc)
        fluent_bit.stop()
        assert ikefilter.stop() == 0, ikefilter.log()[-3000:]
    finally:
        stop_all(ikefilter, fluent_bit)
    assert count_lines(out) == 0
    assert read_json_lines(out) == []


def assert_delivered(out: Path, lines: list[str], ikefilter: Daemon,
                     fluent_bit: Daemon) -> None:
    """Every line arrived exactly once, with no handshake failure and no Fluent Bit error."""
    assert not handshake_failures(ikefilter), ikefilter.log()[-3000:]
    assert "[error]" not in fluent_bit.log(), fluent_bit.log()[-3000:]
    docs = read_json_lines(out)
    assert len(docs) == len(lines)
    assert_exactly_once(docs, lines)


def _no_handshake_failure(daemon: Daemon) -> None:
    failures = handshake_failures(daemon)
    assert not failures, "\n".join(failures)


# -- ikefilter -> Fluent Bit -----------------------------------------------------------------


@needs_fluent_bit
def test_ikefilter_upstream_to_fluent_bit_in_forward_shared_key(tmp_path: Path) -> None:
    """fluent-logger -> ikefilter forward --upstream (--upstream-shared-key-env) -> in_forward
    (Shared_Key) -> out_file: every document arrives, once."""

    lines = write_lines(tmp_path / "ike.log", COUNT, shape="rfc5424")
    out_dir = tmp_path / "fluent-bit-out"
    out_dir.mkdir()
    out = out_dir / "ecs.jsonl"
    ikefilter_port, fluent_bit_port = free_port(), free_port()
    ikefilter = fluent_bit = None
    try:
        fluent_bit = start_fluent_bit(tmp_path, "fluent-bit", (SERVICE + FORWARD_TO_FILE).format(
            fluent_bit_port=fluent_bit_port, out_dir=out_dir))
        # Not probed by connecting: a connection that never sends PING is a handshake error.
        wait_for(lambda: f"listening on 127.0.0.1:{fluent_bit_port}" in fluent_bit.log(), 15,
                 "Fluent Bit in_forward to listen", proc=fluent_bit.proc)
        ikefilter = start_ikefilter(
            tmp_path, ikefilter_port, KEY, "--upstream", f"127.0.0.1:{fluent_bit_port}",
            "--upstream-shared-key-env", KEY_VAR, "--tag", "ecs.clavister")
        start = time.monotonic()
        emit_lines(ikefilter_port, lines)
        fluent_bit.wait_lines(out, COUNT, timeout=20)
        elapsed = time.monotonic() - start
        time.sleep(0.5)  # a duplicate would land now
        assert ikefilter.stop() == 0, ikefilter.log()[-3000:]
        assert fluent_bit.stop() == 0, fluent_bit.log()[-3000:]
    finally:
        stop_all(fluent_bit, ikefilter)
    assert_delivered(out, lines, ikefilter, fluent_bit)
    print(f"\nikefilter -> Fluent Bit (Shared_Key): {COUNT} events in {elapsed:.2f} s")


@needs_fluent_bit
def test_ikefilter_upstream_wrong_key_delivers_nothing(tmp_path: Path) -> None:
    """Fluent Bit's in_forward refuses ikefilter's PING when the keys differ: nothing written."""

    out_dir = tmp_path / "fluent-bit-out"
    out_dir.mkdir()
    out = out_dir / "ecs.jsonl"
    ikefilter_port, fluent_bit_port = free_port(), free_port()
    ikefilter = fluent_bit = None
    try:
        fluent_bit = start_fluent_bit(tmp_path, "fluent-bit", (SERVICE + FORWARD_TO_FILE).format(
            fluent_bit_port=fluent_bit_port, out_dir=out_dir))
        wait_for(lambda: f"listening on 127.0.0.1:{fluent_bit_port}" in fluent_bit.log(), 15,
                 "Fluent Bit in_forward to listen", proc=fluent_bit.proc)
        ikefilter = start_ikefilter(
            tmp_path, ikefilter_port, "not-" + KEY, "--upstream",
            f"127.0.0.1:{fluent_bit_port}", "--upstream-shared-key-env", KEY_VAR,
            "--tag", "ecs.clavister", "--drain-timeout", "1")
        emit_lines(ikefilter_port, write_lines(tmp_path / "ike.log", 20))
        wait_for(lambda: fluent_bit.log().count("handshake error checking PING") >= 2, 20,
                 "Fluent Bit to refuse ikefilter's handshake twice", proc=fluent_bit.proc)
        ikefilter.stop()
        assert fluent_bit.stop() == 0, fluent_bit.log()[-3000:]
    finally:
        stop_all(fluent_bit, ikefilter)
    assert count_lines(out) == 0


# -- the documented loop: Fluent Bit -> ikefilter -> the same Fluent Bit ----------------------


# in_forward refuses a frame over its Buffer_Max_Size and resets the connection: ikefilter
# sends a chunk's documents (several times the size of its lines) in frames under
# --upstream-max-frame, and acks the chunk once they all are.
SMALL_BUFFER = ("    Buffer_Chunk_Size  65536\n    Buffer_Max_Size  262144\n",
                ("--upstream-max-frame", "100000"))


@needs_fluent_bit
@pytest.mark.parametrize("next_hop", [None, SMALL_BUFFER], ids=["default", "small-buffer"])
def test_fluent_bit_round_trip_shared_key_both_ways(tmp_path: Path, next_hop) -> None:
    """One Fluent Bit: tail -> out_forward -> ikefilter -> in_forward -> out_file, both hops
    authenticated with the shared key; and with an in_forward buffer far smaller than a
    chunk's documents."""
    lines = write_lines(tmp_path / "ike.log", COUNT, shape="receiver")
    out_dir = tmp_path / "fluent-bit-out"
    out_dir.mkdir()
    out = out_dir / "ecs.jsonl"
    ikefilter_port, fluent_bit_port = free_port(), free_port()
    in_forward, options = ("", ()) if next_hop is None else next_hop
    config = TAIL_TO_FORWARD.format(lines=tmp_path / "ike.log", ikefilter_port=ikefilter_port)
    config += after_line(FORWARD_TO_FILE, "    Self_Hostname  fluent-bit\n", in_forward
                         ).format(fluent_bit_port=fluent_bit_port, out_dir=out_dir)
    ikefilter = fluent_bit = None
    try:
        ikefilter = start_ikefilter(
            tmp_path, ikefilter_port, KEY, "--upstream", f"127.0.0.1:{fluent_bit_port}",
            "--shared-key-env", KEY_VAR, "--upstream-shared-key-env", KEY_VAR,
            "--tag", "ecs.clavister", *options)
        start = time.monotonic()
        fluent_bit = start_fluent_bit(tmp_path, "fluent-bit", config)
        fluent_bit.wait_lines(out, COUNT, timeout=25,
                              check=lambda: _no_handshake_failure(ikefilter))
        elapsed = time.monotonic() - start
        time.sleep(0.5)
        assert fluent_bit.stop() == 0, fluent_bit.log()[-3000:]
        assert ikefilter.stop() == 0, ikefilter.log()[-3000:]
    finally:
        stop_all(ikefilter, fluent_bit)
    assert "exceed" not in fluent_bit.log(), fluent_bit.log()[-3000:]
    assert_delivered(out, lines, ikefilter, fluent_bit)
    print(f"\nFluent Bit -> ikefilter -> Fluent Bit ({'default' if next_hop is None else 'small'}"
          f" buffer): {COUNT} events in {elapsed:.2f} s")


def test_docs_quote_the_tested_config() -> None:
    """docs/integrations.md shows the round trip's config as run above, values aside."""
    text = DOC.read_text("utf-8")
    config = (TAIL_TO_FORWARD + FORWARD_TO_FILE).format(**DOC_VALUES)
    assert f"```\n{config}```\n" in text, f"{DOC.name} must quote this config:\n{config}"
