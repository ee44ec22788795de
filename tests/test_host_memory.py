"""host_memory: a big block freed by a worker thread is reused, not faulted in again.

Each case runs in a fresh interpreter: the allocator settings are process-wide.
"""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the settings are glibc's; elsewhere they are a no-op"
)

# A worker thread (as XLA's are) mallocs, touches and frees a 96 MiB block twice, the
# size of a step's temporaries; prints the page faults of the second time.
_STEPS = """
import ctypes, ctypes.util, resource, sys, threading
from s2s_jax.runtime import host_memory
if sys.argv[1] != "untouched":  # as s2s_jax.main does, with the config's choice
    reuse = sys.argv[1] == "reuse"
    assert host_memory.configure({"reuse_host_memory": reuse}) == reuse
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size, faults = 96 << 20, []
def step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
for _ in range(2):
    thread = threading.Thread(target=step)
    thread.start()
    thread.join()
print(faults[1])
"""


def _second_step_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@pytest.mark.parametrize("mode", ["untouched", "off"])
def test_with_glibc_defaults_every_step_faults_its_block_in_again(mode):
    pages = (96 << 20) // 4096
    assert _second_step_faults(mode) > pages // 2  # the problem the module solves


def test_reused_the_freed_block_is_not_faulted_in_again():
    assert _second_step_faults("reuse") < 1000
