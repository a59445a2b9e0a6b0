"""The forward server's file output never leaves a torn line for the next batch to join."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ikefilter.adapters.forward.output import FileOutput


@pytest.mark.parametrize("before, after, aside", [
    # a run killed mid-write left half a document after the last whole one
    (b'{"a":1}\n{"b":"half', b'{"a":1}\n{"c":3}\n', b'{"b":"half\n'),
    (b'{"a":1}\n', b'{"a":1}\n{"c":3}\n', None),
    (b"", b'{"c":3}\n', None),
    (b'{"x":"' + b"y" * 200_000, b'{"c":3}\n', b'{"x":"' + b"y" * 200_000 + b"\n"),
], ids=["torn", "whole", "empty", "all-one-fragment"])
def test_a_torn_tail_is_moved_aside_before_the_next_batch(tmp_path: Path, before, after,
                                                           aside) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(before)
    write = FileOutput(out)
    write(b'{"c":3}\n')
    write.close()
    assert out.read_bytes() == after
    torn = tmp_path / "out.jsonl.torn"
    if aside is None:
        assert not torn.exists() and write.torn == 0
    else:
        assert torn.read_bytes() == aside and write.torn == 1
        assert torn.stat().st_mode & 0o777 == 0o600


def test_a_batch_whose_write_fails_is_cut_off_again(tmp_path: Path) -> None:
    """A write that fails part way (here the file size limit, as a full disk would) leaves
    nothing of its batch: the next batch starts on a line of its own."""
    out = tmp_path / "out.jsonl"
    script = textwrap.dedent(f"""
        import resource, signal
        from ikefilter.adapters.forward.output import FileOutput
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        write = FileOutput({str(out)!r})
        write(b'{{"a":1}}\\n')
        resource.setrlimit(resource.RLIMIT_FSIZE, (20, resource.RLIM_INFINITY))
        try:
            write(b'{{"b":"' + b"x" * 100 + b'"}}\\n')
        except OSError:
            print("failed")
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        write(b'{{"c":3}}\\n')
        write.close()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "failed"
    assert out.read_bytes() == b'{"a":1}\n{"c":3}\n'
