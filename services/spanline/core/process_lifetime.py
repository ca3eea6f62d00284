"""Child processes that cannot outlive the process that started them.

`spanline up` puts each service in its own process group (so a terminal's Ctrl-C reaches only
the supervisor, which drains the services in order), and the bundled broker in its own
session. The price: when the supervisor itself is killed (SIGKILL, OOM killer, a test
timing out) nothing signals the children, and a whole pipeline keeps running orphaned,
holding its ports and the in-memory broker's memory. On Linux the kernel can send a signal
to a child when its parent dies (``PR_SET_PDEATHSIG``); elsewhere this is a no-op and the
old behaviour stays.

The signal is SIGTERM, so an orphaned service still runs its own drain. The kernel ties it
to the *thread* that forked the child: only call this for children started from a thread
that lives as long as the supervisor (the main thread in ``spanline up`` and the tests).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for :class:`subprocess.Popen`: SIGTERM this child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # the parent may have died between fork and prctl: then nobody would ever signal us
    if os.getppid() == 1:
        os._exit(1)
