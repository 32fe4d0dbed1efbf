"""CPU training keeps freed memory: glibc's malloc tuned so a step's big tensors reuse pages.

With glibc's defaults every allocation above its mmap threshold (dynamic, up to 32 MiB) is
a fresh mapping that the kernel faults in and zeroes page by page on first touch and unmaps
again when it is freed, so a training step that allocates and frees the same large
activations every time pays tens of thousands of page faults (~79k per step and ~170 ms of
system time for SASRec at length 200 on ML-100K before the chunked output loss; measured in
benchmarks/README.md, "Where an epoch's time goes"). `keep_freed_memory` makes malloc serve
them from its heap and never give freed pages back, so the next step reuses them.

The arithmetic is untouched, so results are identical; the cost is that the process keeps
its peak memory instead of returning it between steps (a training process's peak is its
steady state anyway). ``AUXREC_MALLOC=default`` in the environment leaves glibc's defaults;
on a C library other than glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # malloc.h
_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for training (once per process); True when the setting is in force."""
    global _applied
    if _applied:
        return True
    if os.environ.get("AUXREC_MALLOC", "").lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # mallopt returns 1 on success; the trim threshold is an int, hence 2**31 - 1 for "never"
        _applied = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError) as error:
        logger.debug("could not tune malloc: %s", error)
    return _applied
