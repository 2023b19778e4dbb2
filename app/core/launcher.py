"""The launcher the service's long-lived subprocesses start through (k6, py-spy).

A few lines of Python that ask the kernel to send the child SIGTERM when the worker dies
(PR_SET_PDEATHSIG, kept across exec), then exec the child. A worker killed with SIGKILL thus
still stops its k6 gracefully instead of leaving load running unwatched, and leaves no py-spy
pausing a target. Doing this in the launcher rather than in a preexec_fn keeps the fork safe
in a threaded server. For a sandbox it also becomes the sandbox's uid and ignores SIGINT
before it becomes bwrap: bwrap would die of the SIGINT that asks k6 (which installs its own
handler) to stop gracefully, and take k6 with it before its summary is written. (The uid
switch comes first: the kernel clears PR_SET_PDEATHSIG when credentials change.)
"""

from __future__ import annotations

import os
import shutil
import sys

_LAUNCHER = """
import ctypes, os, signal, sys
uid = int(sys.argv[2])
if uid >= 0:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)
os.execv(sys.argv[3], sys.argv[3:])
"""


def launcher_argv(argv: list[str], *, uid: int = -1) -> list[str]:
    """``argv`` started through the launcher (as ``uid`` when one is given)."""
    binary = shutil.which(argv[0]) or argv[0]
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"no executable at {argv[0]}")
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), str(uid)]
    return [*launcher, binary, *argv[1:]]
