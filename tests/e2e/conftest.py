"""Helpers for the end-to-end tests: Debian packages, free ports, daemons stopped by PID.

Every daemon a test starts runs in the foreground as a child of the test, is waited for with
a deadline, and is stopped by its PID (SIGTERM, then SIGKILL) whatever the test's outcome.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from .certificates import Certs, make_certs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"

_apt_updated = False
_throughput: list[tuple[str, int, float]] = []


# -- Debian packages -------------------------------------------------------------------------

# What the tests put on this machine when it is missing: the one list, said up front.
INSTALLED = {
    "syslog-ng": ("syslog-ng-core", "syslog-ng-mod-python", "python3-venv"),
    "rsyslog": ("libestr0", "libfastjson4", "liblognorm5"),
}
# Downloaded and unpacked into the cache, never installed: the tests run their own daemon.
UNPACKED = ("rsyslog",)
# IKEFILTER_E2E_INSTALL=0: install nothing; a test whose packages are missing skips.
INSTALL_OFF = os.environ.get("IKEFILTER_E2E_INSTALL", "1") == "0"


def pytest_report_header(config) -> list[str]:
    """Before any test: what the end-to-end tests would install, and whether they can."""
    packages = [p for group in INSTALLED.values() for p in group]
    missing = [p for p in packages if has_apt() and not installed(p)]
    lines = [
        "e2e: installs these Debian packages when missing (apt-get update once, then "
        f"apt-get install): {', '.join(packages)}",
        f"e2e: downloads and unpacks (never installs) {', '.join(UNPACKED)} into "
        f"{cache_dir('debs').parent}; builds a venv of /usr/bin/python3 there for syslog-ng",
    ]
    why = cannot_install()
    if not missing:
        lines.append("e2e: all of them are installed already: nothing will be installed")
    elif why:
        lines.append(f"e2e: missing {', '.join(missing)}, and {why}: the tests that need "
                     "them skip")
    else:
        lines.append(f"e2e: missing now: {', '.join(missing)} (IKEFILTER_E2E_INSTALL=0 "
                     "installs nothing and skips those tests)")
    return lines


def has_apt() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg-query") is not None


def cannot_install() -> str | None:
    """Why packages cannot be installed here, or None when they can."""
    if not has_apt():
        return "this machine has no apt"
    if INSTALL_OFF:
        return "IKEFILTER_E2E_INSTALL=0 turns installing off"
    if os.geteuid() != 0:
        return "apt-get needs root (install them first, or run the tests as root)"
    return None


def require_apt() -> None:
    """Skip when this machine has no apt at all; everything else must work."""
    if not has_apt():
        pytest.skip("apt is not available on this machine")


def installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True, text=True, check=False,
    )
    # "install ok installed"; a removed package reads "... not-installed" or "... config-files"
    return result.returncode == 0 and result.stdout.split()[-1:] == ["installed"]


def apt_update_once() -> None:
    global _apt_updated
    if not _apt_updated:
        _run(["apt-get", "update", "-q"], timeout=300)
        _apt_updated = True


def apt_install(*packages: str) -> None:
    """Install the packages that are missing (``apt-get update`` once before the first)."""
    require_apt()
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return
    why = cannot_install()
    if why:
        pytest.skip(f"needs the Debian packages {', '.join(missing)}, and {why}")
    apt_update_once()
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], timeout=600,
         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def apt_download(package: str, directory: Path) -> Path:
    """The package's .deb, downloaded into ``directory`` (updating the lists if needed)."""
    require_apt()
    directory.mkdir(parents=True, exist_ok=True)
    found = sorted(directory.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    try:
        _run(["apt-get", "download", "-q", package], cwd=directory, timeout=300)
    except AssertionError:
        why = cannot_install()
        if why:
            pytest.skip(f"cannot download the Debian package {package} (the lists may need "
                        f"apt-get update), and {why}")
        apt_update_once()
        _run(["apt-get", "download", "-q", package], cwd=directory, timeout=300)
    found = sorted(directory.glob(f"{package}_*.deb"))
    assert found, f"apt-get download {package} left no .deb in {directory}"
    return found[-1]


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                            **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}"
        f"\n{result.stderr[-3000:]}"
    )
    return result


def cache_dir(name: str) -> Path:
    """A directory kept between runs: inside the tox env when there is one, else /tmp."""
    base = os.environ.get("TOX_ENV_DIR")
    root = Path(base) / "e2e-cache" if base else Path("/tmp/ikefilter-e2e-cache")
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port on 127.0.0.1")


def wait_for(condition: Callable[[], object], timeout: float, what: str,
              interval: float = 0.05, proc: subprocess.Popen | None = None) -> object:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds (or when ``proc``
    exits first)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Daemon:
    """A foreground daemon, output to a log file, stopped by its PID."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict | None = None,
                 cwd: Path | None = None):
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self.pid = self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM by PID, wait, then SIGKILL by PID; returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._log.close()
        return self.proc.returncode

    def wait_listening(self, port: int, what: str, timeout: float = 30) -> None:
        """Wait until ``port`` accepts connections; fail with the daemon's log."""
        try:
            wait_for(lambda: port_open(port), timeout, f"{what} to listen", proc=self.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None

    def wait_lines(self, path: Path, count: int, timeout: float,
                   check: Callable[[], None] | None = None) -> None:
        """Wait until ``path`` has ``count`` lines (``check`` may fail early); fail with the
        daemon's log."""
        def done() -> bool:
            if check is not None:
                check()
            return count_lines(path) >= count

        try:
            wait_for(done, timeout, f"{count} lines in {path.name}", proc=self.proc)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc} (have {count_lines(path)})\n{self.log()[-4000:]}") from None

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def after_line(config: str, line: str, added: str) -> str:
    """``config`` with ``added`` after its first ``line`` (one whole line, with its newline):
    a Fluent Bit section extended for one test; raises when the line is not there, so that
    a template changed under a test cannot drop what the test adds."""
    if line not in config:
        raise AssertionError(f"no line {line!r} in the config to add after")
    return config.replace(line, line + added, 1)


def render(template: Path, target: Path, **values: object) -> str:
    """Fill the ``@NAME@`` placeholders of an example config; every one must be given."""
    text = template.read_text("utf-8")
    for name, value in values.items():
        placeholder = f"@{name}@"
        assert placeholder in text, f"{placeholder} not in {template.name}"
        text = text.replace(placeholder, str(value))
    assert "@" not in "".join(
        line for line in text.splitlines() if not line.lstrip().startswith(("#", "@version"))
    ), f"unfilled placeholder in {template.name}"
    target.write_text(text, "utf-8")
    return text


# -- data ------------------------------------------------------------------------------------

TEXT_SHAPES = ("bracketed", "bare", "rfc3164", "rfc5424", "receiver", "raw-ids")


def generated(count: int, shapes: tuple[str, ...] = TEXT_SHAPES, seed: int = 7) -> list[str]:
    from ikefilter import catalog, generate

    return list(generate.lines(catalog.load(), count, seed, shapes))


def reference_documents(lines: list[str]) -> list[dict]:
    """What ``ikefilter run`` makes of the same lines, as plain dicts."""
    from ikefilter.pipeline import Pipeline

    items = Pipeline().process_lines(lines)
    return [msgspec.json.decode(msgspec.json.encode(i)) if i is not None else None
            for i in items]


def read_json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return [msgspec.json.decode(line) for line in data.splitlines() if line.strip()]


_counted: dict[Path, tuple[int, int, int]] = {}  # path -> inode, bytes read, lines in them


def count_lines(path: Path) -> int:
    """The lines in ``path``, reading only what was appended since the last call (polling a
    file of many megabytes whole would take the CPU the daemons are measured on)."""
    try:
        with open(path, "rb") as f:
            inode = os.fstat(f.fileno()).st_ino
            known, offset, lines = _counted.get(path, (inode, 0, 0))
            if known != inode or os.fstat(f.fileno()).st_size < offset:
                offset = lines = 0
            f.seek(offset)
            while chunk := f.read(1 << 20):
                offset += len(chunk)
                lines += chunk.count(b"\n")
    except FileNotFoundError:
        return 0
    _counted[path] = (inode, offset, lines)
    return lines


def emit_lines(port: int, lines: list[str], sender_tag: str = "fw") -> None:
    """Send each line as ``{"log": line}``, tag ``ike``, with fluent-logger (a real Fluentd
    client), to a forward server on loopback."""
    from fluent import sender

    client = sender.FluentSender(sender_tag, host="127.0.0.1", port=port,
                                 nanosecond_precision=True)
    try:
        for line in lines:
            assert client.emit("ike", {"log": line}), client.last_error
    finally:
        client.close()


def send_tcp(port: int, lines: list[str]) -> None:
    payload = "".join(line + "\n" for line in lines).encode()
    # sendall's timeout bounds the whole send, and a daemon under flow control takes the
    # lines only as fast as it parses them: on a busy machine that is well over 10 s.
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(payload)


def send_udp(port: int, lines: list[str], pause_every: int = 50) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i, line in enumerate(lines, 1):
            sock.sendto(line.encode(), ("127.0.0.1", port))
            if i % pause_every == 0:
                time.sleep(0.01)


def check_document(doc: dict, ref: dict) -> None:
    """The document a daemon wrote is the ECS document ``ikefilter run`` makes of the line,
    with the types kept; only what the daemon adds (host, syslog priority) may differ."""
    assert isinstance(doc["event"], dict) and isinstance(doc["ecs"], dict)
    assert isinstance(doc["event"].get("severity", 0), int)
    # event.ingested is when each process took the event in: a time, not the reference's.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["event"]["ingested"])
    event = {k: v for k, v in doc["event"].items() if k != "ingested"}
    assert event == {k: v for k, v in ref["event"].items() if k != "ingested"}
    for key in ("@timestamp", "message", "clavister", "source", "destination",
                "network", "user", "related", "tags", "ecs", "error", "data_stream"):
        assert doc.get(key) == ref.get(key), (key, doc.get(key), ref.get(key))
    assert doc["observer"]["vendor"] == ref["observer"]["vendor"]


SITE_PLUGIN = """\
from ikefilter import hookimpl


@hookimpl
def ikefilter_enrich(events):
    return {i: "e2e_drop" for i, e in enumerate(events) if e.event.code == "1694"}


@hookimpl
def ikefilter_redact(events):
    if any(e.event.code == "1695" for e in events):
        raise RuntimeError("e2e: refusing to redact")
"""


@pytest.fixture
def site_plugin(tmp_path: Path) -> Path:
    """A site plugin file: drops ID 1694 by a rule; its redaction fails on ID 1695, so those
    events are quarantined. Neither may reach any output, raw or normalized."""
    path = tmp_path / "e2e_site_rules.py"
    path.write_text(SITE_PLUGIN, "utf-8")
    return path


DOC = REPO / "docs" / "integrations.md"


def quoted_example(name: str) -> str:
    """The code block that follows ``<!-- example: docs/examples/NAME -->`` in the docs."""
    text = DOC.read_text("utf-8")
    marker = f"<!-- example: docs/examples/{name} -->\n```\n"
    assert text.count(marker) == 1, f"{DOC.name} must quote docs/examples/{name} once"
    start = text.index(marker) + len(marker)
    return text[start:text.index("\n```\n", start) + 1]


def record_throughput(path: str, events: int, seconds: float,
                      relative_to: tuple[str, ...] = ()) -> None:
    """A figure for the ``throughput`` section; also as a fraction of the rate of each path
    in ``relative_to`` (recorded before it). Figures are printed, never asserted."""
    _throughput.append((path, events, seconds, relative_to))


def pytest_terminal_summary(terminalreporter) -> None:
    if not _throughput:
        return
    terminalreporter.section("throughput")
    rates = {}
    for path, events, seconds, relative_to in _throughput:
        rate = rates[path] = events / seconds
        line = f"{path}: {events} events in {seconds:.2f} s = {rate:,.0f} events/s"
        for other in relative_to:
            if other in rates:
                line += f"; {rate / rates[other]:.0%} of {other}"
        terminalreporter.write_line(line)


def timed_rounds(runs: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Each run's shortest time over ``rounds`` rounds, the runs taking turns within a round,
    so that a path and its baseline meet the same load on a shared machine."""
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.monotonic()
            run()
            best[name] = min(best[name], time.monotonic() - start)
    return best


def timed_outputs(daemon, outputs: dict[str, tuple[int, Path]], lines: list[str],
                  rounds: int) -> dict[str, float]:
    """Send ``lines`` over TCP to each output's port in turn, ``rounds`` times: each
    output's best time until its file holds them all (``daemon``: ``wait_ready`` and
    ``wait_lines``, as the daemon classes here have)."""
    sent = dict.fromkeys(outputs, 0)

    def run(name: str) -> None:
        port, out = outputs[name]
        send_tcp(port, lines)
        sent[name] += len(lines)
        daemon.wait_lines(out, sent[name], 300)

    daemon.wait_ready()
    return timed_rounds({name: lambda name=name: run(name) for name in outputs}, rounds)


def _from_checkout() -> bool:
    import ikefilter

    return Path(ikefilter.__file__).resolve().parent.parent == REPO


def ikefilter_command() -> str:
    """``ikefilter`` as a command line for a daemon to run (split on spaces).

    rsyslog starts mmexternal children with an empty environment, so a checkout that is not
    installed is put on the path by ``env``.
    """
    if _from_checkout():
        return f"/usr/bin/env PYTHONPATH={REPO} {sys.executable} -m ikefilter"
    return f"{sys.executable} -m ikefilter"


def child_env() -> dict[str, str]:
    """The environment for a child running ``sys.executable -m ikefilter``.

    Under tox, ikefilter is installed in that interpreter. Run from a checkout with no install,
    the child needs the checkout on its path, whatever directory it starts in.
    """
    env = dict(os.environ)
    if _from_checkout():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA and a server certificate for localhost / 127.0.0.1, made once per session."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    return make_certs(tmp_path_factory.mktemp("tls"))
