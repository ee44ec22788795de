"""Preemption: SIGTERM stops training at a step boundary that every process agrees on.

Schedulers announce an eviction with SIGTERM and kill the job a grace period later
(Cloud TPU maintenance events, SLURM ``--signal=TERM@<seconds>``, Kubernetes). The
training loop asks ``Preemption.reached(step)`` after every step; once it is True the
loop saves a checkpoint of that step and exits 0, and the same command resumes.

* One process: a SIGTERM handler sets a flag that ``reached`` reports.
* Several processes (``jax.distributed``): JAX's preemption service catches SIGTERM on
  any process and tells the others; ``multihost_utils.reached_preemption_sync_point``
  is then True on every process at the same step, so all of them save that step
  together. A process that stopped on its own would leave the others waiting in a
  collective until the scheduler kills them.
"""

import signal

import jax
from jax.experimental import multihost_utils


class Preemption:
    """Context manager that watches for SIGTERM while training.

    Usage::

        with Preemption() as preemption:
            for step in ...:
                ...
                if preemption.reached(step):
                    save(step); break
    """

    def __init__(self):
        self._distributed = jax.distributed.is_initialized()
        self._signalled = False
        self._previous_handler = None

    def __enter__(self) -> "Preemption":
        if not self._distributed:
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._distributed:
            signal.signal(signal.SIGTERM, self._previous_handler)

    def _on_sigterm(self, signum, frame) -> None:
        self._signalled = True

    def reached(self, step: int) -> bool:
        """Whether to save ``step`` and stop; must be called at every step, on every
        process."""
        if self._distributed:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._signalled
