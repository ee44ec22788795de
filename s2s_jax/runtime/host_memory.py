"""Host memory: a step's freed buffers are kept for the next step, not unmapped.

XLA:CPU allocates a step's temporary buffers with malloc at every execution (one block
of 160 MB for the Multi30k step) and frees them when it ends. glibc maps blocks over
32 MiB fresh from the kernel, and on a thread's own arena any block over 64 MiB, and
unmaps them when freed, so every step faults all of its temporaries in again, page by
page: 41,000 page faults and 65 ms of kernel time per Multi30k step on 2 cores. Served
from the heap and kept there when freed, the block is reused by the next step as it is.
The heap does not shrink, though, and where a step's block is still being freed when
the next one is allocated, it keeps room for both: on the large benchmark model
(830 MB of temporaries a step) peak memory may grow by one or two blocks.
``config.reuse_host_memory=False`` keeps glibc's defaults.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc's <malloc.h>
_SETTINGS = (
    (_M_ARENA_MAX, 1),  # every thread allocates from the heap, which grows past 64 MiB
    (_M_MMAP_MAX, 0),  # no block is mapped on its own: every one comes from the heap
    (_M_TRIM_THRESHOLD, 2**31 - 1),  # free memory kept at the heap's top (a C int)
)


def configure(config) -> bool:
    """Keeps freed memory for reuse where ``config.reuse_host_memory`` (the default)
    asks for it; returns whether it is kept."""
    return bool(config["reuse_host_memory"]) and reuse_freed_memory()


def reuse_freed_memory() -> bool:
    """Makes glibc's malloc keep freed blocks for reuse. Call once, before the first
    step; it affects the whole process. Returns False, changing nothing, where the C
    library is not glibc (macOS, musl)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in _SETTINGS)
