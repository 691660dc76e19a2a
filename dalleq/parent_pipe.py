"""A child process that ends with its parent, however the parent dies (issue 16, item 14).

`dalleq up` runs its worker as a child in a session of its own, so a Ctrl-C in the terminal
reaches only `up`. If `up` is killed hard (SIGKILL, the OOM killer, a closed terminal) nothing
tells that child, and it would hold the model (on a GPU, its memory) and retry a server that is
gone, forever. So the parent holds the only write end of a pipe whose read end the child watches:
the kernel closes the write end when the parent dies, and the child's read returns end-of-file.
That works on Linux and macOS alike (Linux's PR_SET_PDEATHSIG would serve Linux alone).
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

PARENT_GONE_EXIT_STATUS = 1


class ParentPipe:
    """The parent's side: one pipe for every child it starts. Both ends are non-inheritable, so
    only the read end goes to a child, through Popen's pass_fds."""

    def __init__(self):
        self.read_fd, self._write_fd = os.pipe()


def exit_with_parent(read_fd: int) -> threading.Thread:
    """End this process the moment the pipe's write end closes, i.e. when the parent dies.

    It ends at once (os._exit): the server was the parent, so no upload or hand-back could
    succeed. Nothing is lost by it: finished results are already in the spool, fsynced, and are
    posted at the next start; the leases of a batch cut short expire and the jobs run again.
    """
    def watch() -> None:
        while os.read(read_fd, 1):  # the parent never writes: this returns b"" when it is gone
            pass
        log.warning("the parent process is gone: stopping now (finished results stay in the "
                    "spool)")
        os._exit(PARENT_GONE_EXIT_STATUS)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
