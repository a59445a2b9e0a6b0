"""The forward server's file output never leaves a torn line for the next batch to join."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ikefilter.adapters.forward.output import FileOutput


@pytest.mark.parametrize("before, after", [
    # a run killed mid-write left half a document after the last whole one
    (b'{"a":1}\n{"b":"half', b'{"a":1}\n{"b":"half\n{"c":3}\n'),
    (b'{"a":1}\n', b'{"a":1}\n{"c":3}\n'),
    (b"", b'{"c":3}\n'),
], ids=["torn", "whole", "empty"])
def test_the_next_batch_starts_on_a_line_of_its_own(tmp_path: Path, before, after) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(before)
    write = FileOutput(out)
    write(b'{"c":3}\n')
    write.close()
    assert out.read_bytes() == after


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
