"""Keys never leak: the redaction key and the forward shared key appear in no output, log
line, ``--stats`` file, error message or process argument list, on the happy path and on
the error paths. Each test uses a fresh, distinctive key value and searches every byte the
processes wrote for it (as text, hex and base64).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from ikefilter.adapters.forward.protocol import decode_message, encode_ping, parse_helo

from .conftest import child_env, free_port, generated, wait_for
from .test_forward_e2e import Peer, fluent_bit_frame, run_async

REDACT_VAR = "IKEFILTER_TEST_REDACT_KEY"
SHARED_VAR = "IKEFILTER_TEST_SHARED_KEY"


def new_key(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(12)}-Zq9"


def leaks(key: str, *blobs: bytes | str) -> list[str]:
    """Which forms of ``key`` occur in the blobs (empty when none)."""
    raw = key.encode()
    forms = {
        "raw": raw,
        "hex": raw.hex().encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "core": key.split("-")[1].encode(),  # the random part alone
    }
    found = []
    for blob in blobs:
        data = blob.encode() if isinstance(blob, str) else blob
        found += [name for name, form in forms.items() if form in data]
    return found


def run_ikefilter(*args: str, stdin: bytes = b"", env: dict | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ikefilter", "-v", *args], input=stdin,
                          capture_output=True, env=env or child_env(), timeout=timeout,
                          check=False)


REDACT_CONFIG = """\
[ikefilter]
quarantine = "quarantine.jsonl"
plugins = [{plugins}]

[redact]
ip = "hmac"
identity = "hmac"
{key}
"""

# a site redaction plugin that fails on one message, so the quarantine path runs too
REFUSE_PLUGIN = """\
from ikefilter import hookimpl


@hookimpl
def ikefilter_redact(events):
    if any(e.event.code == "1695" for e in events):
        raise RuntimeError("refusing this batch")
"""


def redact_site(tmp_path: Path, key_line: str, refuse: bool = False) -> Path:
    (tmp_path / "refuse.py").write_text(REFUSE_PLUGIN)
    config = tmp_path / "site.toml"
    config.write_text(REDACT_CONFIG.format(key=key_line, plugins='"refuse.py"' if refuse else ""))
    return config


@pytest.mark.parametrize("refuse", [False, True], ids=["redacted", "quarantined"])
def test_run_with_redaction_never_writes_the_key(tmp_path: Path, refuse: bool) -> None:
    key = new_key("redact")
    config = redact_site(tmp_path, f'key_env = "{REDACT_VAR}"', refuse=refuse)
    stats = tmp_path / "stats.json"
    lines = generated(300)
    result = run_ikefilter("run", "--config", str(config), "--stats", str(stats),
                           stdin="\n".join(lines).encode() + b"\n",
                           env={**child_env(), REDACT_VAR: key})
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    docs = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    counts = msgspec.json.decode(stats.read_bytes())
    written = [stats.read_bytes()]
    if refuse:  # the quarantine path: the batches holding ID 1695 go to the file
        assert counts["quarantined"] > 0
        written.append((tmp_path / "quarantine.jsonl").read_bytes())
    else:
        assert len(docs) == len(lines) and counts["quarantined"] == 0
        assert all("original" not in doc.get("event", {}) for doc in docs)
    assert leaks(key, result.stdout, result.stderr, *written) == []


@pytest.mark.parametrize("problem", ["missing key file", "empty key file", "key file is a dir",
                                     "unset variable", "bad config value"])
def test_run_error_paths_never_show_the_key(tmp_path: Path, problem: str) -> None:
    key = new_key("redact")
    env = {**child_env(), "IKEFILTER_TEST_OTHER_KEY": key}
    key_file = tmp_path / "redact.key"
    if problem == "missing key file":
        key_line = f'key_file = "{tmp_path / "no-such.key"}"'
    elif problem == "empty key file":
        key_file.write_text("\n")
        key_line = f'key_file = "{key_file}"'
    elif problem == "key file is a dir":
        key_line = f'key_file = "{tmp_path}"'
    elif problem == "unset variable":
        key_line = f'key_env = "{REDACT_VAR}_UNSET"'
    else:  # the key is loaded, then the config fails elsewhere
        env[REDACT_VAR] = key
        key_line = f'key_env = "{REDACT_VAR}"\nkeep_networks = ["not-a-network"]'
    config = redact_site(tmp_path, key_line)
    result = run_ikefilter("run", "--config", str(config), "--stats", str(tmp_path / "s.json"),
                           stdin=generated(5)[0].encode() + b"\n", env=env)
    assert result.returncode != 0
    assert result.stdout == b""
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert leaks(key, result.stdout, result.stderr) == []


# -- ikefilter forward -----------------------------------------------------------------------


class Forward:
    """``ikefilter -v forward`` with stdout and stderr captured to files, stopped by PID."""

    def __init__(self, tmp_path: Path, name: str, *args: str, env: dict) -> None:
        self.port = free_port()
        self.stdout = tmp_path / f"{name}.out"
        self.stderr = tmp_path / f"{name}.err"
        self.stats = tmp_path / f"{name}.stats.json"
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ikefilter", "-v", "forward", "--listen",
                 f"127.0.0.1:{self.port}", "--stats", str(self.stats), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
            )
        wait_for(lambda: b"listening on" in self.stderr.read_bytes(), 20, f"{name} to listen",
                 proc=self.proc)

    def cmdline(self) -> bytes:
        return Path(f"/proc/{self.proc.pid}/cmdline").read_bytes()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def everything(self) -> list[bytes]:
        files = (self.stdout, self.stderr, self.stats)
        return [path.read_bytes() for path in files if path.exists()]


def test_forward_never_shows_the_shared_or_redaction_key(tmp_path: Path) -> None:
    """A last hop with a shared key and redaction, writing to stdout; a wrong-key client, a
    garbage handshake, a right-key client; a first hop whose own upstream key is wrong."""
    shared, wrong, redact = new_key("shared"), new_key("wrong"), new_key("redact")
    config = redact_site(tmp_path, f'key_env = "{REDACT_VAR}"')
    env = {**child_env(), SHARED_VAR: shared, REDACT_VAR: redact, "WRONG_KEY": wrong}
    last = Forward(tmp_path, "last", "--output", "-", "--config", str(config),
                   "--shared-key-env", SHARED_VAR, env=env)
    first = None
    try:
        if Path("/proc").is_dir():
            assert SHARED_VAR.encode() in last.cmdline()
            assert leaks(shared, last.cmdline()) == [] and leaks(redact, last.cmdline()) == []
        first = Forward(tmp_path, "first", "--upstream", f"127.0.0.1:{last.port}",
                        "--upstream-shared-key-env", "WRONG_KEY", "--drain-timeout", "1",
                        env=env)
        line = generated(1)[0]

        async def scenario() -> None:
            # a rogue client with the wrong key
            rogue = await Peer.connect(last.port)
            nonce, _, _ = parse_helo(decode_message(await rogue.reply()))
            await rogue.send(encode_ping("rogue", "salt", nonce, wrong))
            assert decode_message(await rogue.reply())[1] is False
            assert await rogue.closed_by_server()
            await rogue.close()
            # garbage where the PING should be
            junk = await Peer.connect(last.port)
            await junk.reply()
            await junk.send(b"\x94\xa4PING\x01\x02\x03")
            assert await junk.closed_by_server()
            await junk.close()
            # the right key: the line is written, redacted
            good = await Peer.connect(last.port)
            nonce, _, _ = parse_helo(decode_message(await good.reply()))
            await good.send(encode_ping("good", "salt", nonce, shared))
            assert decode_message(await good.reply())[1] is True
            chunk = secrets.token_hex(16)
            await good.send(fluent_bit_frame("ike", [{"log": line}], 1_700_000_000, chunk))
            assert decode_message(await good.reply()) == {"ack": chunk}
            await good.close()
            # through the first hop, whose upstream key is wrong: never acked
            via = await Peer.connect(first.port)
            await via.send(fluent_bit_frame("ike", [{"log": line}], 1_700_000_000, "c2"))
            with pytest.raises(asyncio.TimeoutError):
                await via.reply(timeout=1.5)
            await via.close()

        run_async(scenario())
        wait_for(lambda: b"refused the handshake" in first.stderr.read_bytes(), 20,
                 "the first hop to report the refusal", proc=first.proc)
    finally:
        codes = [hop.stop() for hop in (first, last) if hop is not None]
    # the first hop never got its event acked by the next one: it says so with its status
    assert codes == [1, 0] if first is not None else [0]
    docs = [msgspec.json.decode(x) for x in last.stdout.read_bytes().splitlines()]
    assert len(docs) == 1 and docs[0]["event"]["code"]  # normalized, through redaction
    assert b"shared_key mismatch" in last.stderr.read_bytes()
    for hop in (first, last):
        assert b"Traceback" not in hop.stderr.read_bytes()
        assert b"never retrieved" not in hop.stderr.read_bytes()
    blobs = [*last.everything(), *first.everything()]
    for key in (shared, wrong, redact):
        assert leaks(key, *blobs) == [], key.split("-")[0]


@pytest.mark.parametrize("how", ["--shared-key", "--shared-key=", "--upstream-shared-key",
                                 "--shared-key-env"])
def test_a_key_given_on_the_command_line_is_refused_unquoted(how: str) -> None:
    key = new_key("argv")
    if how.endswith("="):
        args = [how + key]
    elif how == "--shared-key-env":  # the key where the variable's name should be
        args = [how, "!" + key]
    else:
        args = [how, key]
    result = run_ikefilter("forward", "--listen", "127.0.0.1:0", "--output", "-", *args,
                           timeout=60)
    assert result.returncode != 0
    assert b"Traceback" not in result.stderr
    assert leaks(key, result.stdout, result.stderr) == [], result.stderr.decode()


def test_shared_key_from_a_file(tmp_path: Path) -> None:
    key = new_key("file")
    key_file = tmp_path / "shared.key"
    key_file.write_text(key + "\n")
    os.chmod(key_file, 0o600)
    hop = Forward(tmp_path, "hop", "--output", "-", "--shared-key-file", str(key_file),
                  env=child_env())
    try:
        async def scenario() -> None:
            peer = await Peer.connect(hop.port)
            nonce, _, _ = parse_helo(decode_message(await peer.reply()))
            await peer.send(encode_ping("c", "salt", nonce, key))  # stripped of its newline
            assert decode_message(await peer.reply())[1] is True
            await peer.close()

        run_async(scenario())
        assert leaks(key, hop.cmdline()) == []
    finally:
        assert hop.stop() == 0
    assert leaks(key, *hop.everything()) == []
    # a key file that cannot be read: its path named, nothing else
    result = run_ikefilter("forward", "--listen", "127.0.0.1:0", "--output", "-",
                           "--shared-key-file", str(tmp_path / "missing.key"), timeout=60)
    assert result.returncode != 0 and b"missing.key" in result.stderr
