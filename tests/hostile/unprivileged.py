"""Start a process that file permissions bind: as a normal user that is any process; as root
(CI containers) it is one whose capability bounding set lacks CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH, the two that let root read a chmod 000 file (capabilities(7))."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls it


def drop_permission_bypass() -> None:
    """preexec_fn: drop both capabilities from the bounding set; the program exec'd next runs
    without them even as root."""
    if os.geteuid() != 0:
        return
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if _LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, preexec_fn=drop_permission_bypass, text=True,
                          capture_output=True, timeout=timeout)  # fmt: skip


def permissions_enforced(scratch: Path) -> bool:
    """Whether such a process is denied a chmod 000 file here (it is unless the kernel refuses
    the capability drop)."""
    probe = scratch / "probe.bin"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        result = run([sys.executable, "-c", f"open({str(probe)!r}, 'rb')"], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.chmod(0o600)
        probe.unlink()
    return result.returncode != 0 and "PermissionError" in result.stderr
