"""Runs contestants side by side: one worker process each, driven in turns.

Each contestant (s2s_jax, the PyTorch reference, ...) lives in its own process, so its
peak memory is its own and neither library's thread pools disturb the other. The
driver sends commands in turns (A runs k steps, then B the same k steps, then A the
next k, ...), so that a change in machine load hits every contestant alike and the
ratios stay fair on a noisy machine.

Protocol: the driver writes one JSON command per line to the worker's stdin; the
worker answers each with one JSON line on stdout (logs go to stderr).
"""

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable


class Worker:
    """The driver's handle on one contestant process."""

    def __init__(self, name: str, argv: list[str], cwd: str | None = None):
        self.name = name
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd
        )

    def call(self, command: str, **args) -> dict:
        self._proc.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited with {self._proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.call("quit")
        self._proc.wait()


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def serve(handlers: dict[str, Callable[..., dict]]) -> None:
    """Worker side: answers commands until "quit"; stdout carries only the answers."""
    answers = sys.stdout
    sys.stdout = sys.stderr  # libraries that print must not corrupt the protocol
    for line in sys.stdin:
        request = json.loads(line)
        command = request.pop("command")
        if command == "quit":
            answers.write("{}\n")
            answers.flush()
            return
        answer = handlers[command](**request)
        answers.write(json.dumps({**answer, "peak_rss_mib": peak_rss_mib()}) + "\n")
        answers.flush()


MATMUL_SIZE = 2048  # the square matrices on which the matmul rate is measured


def matmul_rate(matmul: Callable[[], object], size: int) -> float:
    """FLOP/s of the best of 5 timed ``[size, size] @ [size, size]`` products."""
    matmul()  # warm-up (and compilation)
    return 2 * size**3 / min(timed(matmul) for _ in range(5))


def jax_matmul_rate(size: int = MATMUL_SIZE, dtype: str = "float32") -> float:
    """jax.numpy's matmul FLOP/s on random ``[size, size]`` matrices in ``dtype``
    ("float32" or "bfloat16"), accumulated in float32 as s2s_jax's matmuls are."""
    import jax  # here, not at the top: a worker loads only its own library
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    matmul = jax.jit(lambda a: jnp.matmul(a, a, preferred_element_type=jnp.float32))
    return matmul_rate(lambda: matmul(a).block_until_ready(), size)


def torch_matmul_rate(size: int = MATMUL_SIZE, dtype: str = "float32") -> float:
    """torch's matmul FLOP/s on random ``[size, size]`` matrices in ``dtype``."""
    import torch

    a = torch.randn(size, size, dtype=getattr(torch, dtype))
    return matmul_rate(lambda: torch.mm(a, a), size)
