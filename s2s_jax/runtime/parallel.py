"""Devices: the only module that builds meshes, shardings or calls jax.distributed.

Data parallelism is ``jax.jit`` over a one-axis ``Mesh`` named ``data``: the batch is
sharded along it, parameters and optimizer state are replicated. The same code runs on
one device, on N simulated CPU devices and on several hosts, where every process
contributes its local rows of the global batch.
"""

import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from s2s_jax.config import ConfigError

DATA_AXIS = "data"
T = TypeVar("T")


def initialize_distributed(config) -> None:
    """Starts JAX's multi-controller runtime when the config asks for it, and leaves
    INFO logging to process 0 (the others log warnings and errors only).

    ``config.distributed.coordinator_address``: "host:port" with ``num_processes`` and
    ``process_id``; "auto" lets JAX detect them (Cloud TPU, SLURM, Open MPI, Kubernetes,
    or ``JAX_COORDINATOR_ADDRESS`` ...); empty means a single process.
    """
    dist = config.distributed
    if dist.coordinator_address == "auto":
        try:
            jax.distributed.initialize()
        except ValueError as error:  # no cluster found: a config problem, not a bug
            raise ConfigError(
                f"config.distributed.coordinator_address='auto' found no cluster to join: {error}"
            ) from error
    elif dist.coordinator_address:
        jax.distributed.initialize(dist.coordinator_address, dist.num_processes, dist.process_id)
    else:
        return
    logging.info(
        "jax.distributed: process %d of %d, %d of %d devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    if jax.process_index() > 0:
        logging.set_verbosity(logging.WARNING)


def cache_compilations(directory: str) -> None:
    """XLA programs persist in ``directory`` across runs (see config.compilation_cache_dir)."""
    if directory and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(directory))
        jax.config.update("jax_compilation_cache_max_size", 2 << 30)


def process_0_first(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` on process 0, then on the others: files it caches on a shared
    filesystem (vocabularies, TFDS data) are written once, by process 0, not raced."""
    if jax.process_count() == 1:
        return fn(*args)
    if jax.process_index() == 0:
        result = fn(*args)
    multihost_utils.sync_global_devices("s2s_jax: process 0 first")
    if jax.process_index() > 0:
        result = fn(*args)
    return result


def make_mesh() -> Mesh:
    """All devices of all processes on the ``data`` axis (XLA propagates shardings)."""
    return jax.make_mesh(
        (jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )


def data_shards(rows: int) -> int:
    """Into how many shards ``make_mesh``'s sharding splits a batch of ``rows`` rows: one
    per device (a batch that does not divide evenly is grouped as evenly as it can)."""
    return math.gcd(rows, jax.device_count())


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def round_to_devices(batch_size: int, mesh: Mesh) -> int:
    """The smallest multiple of the mesh's device count that is >= batch_size."""
    return -(-batch_size // mesh.size) * mesh.size


def process_rows(global_batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This process's contiguous share of the rows of a global batch."""
    count, index = jax.process_count(), jax.process_index()
    rows = len(next(iter(global_batch.values()))) // count
    return {key: value[index * rows : (index + 1) * rows] for key, value in global_batch.items()}


def shard_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows ``[local_batch, ...]`` -> global arrays sharded on ``data``."""
    sharding = batch_sharded(mesh)
    return {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in local_batch.items()
    }


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree of host or device arrays replicated on every device."""
    return jax.device_put(tree, replicated(mesh))


def process_0_decides(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (for decisions from a local clock)."""
    if jax.process_count() == 1:
        return flag
    return bool(multihost_utils.broadcast_one_to_all(np.array(flag)))


def fetch(tree: Any) -> Any:
    """Global arrays -> numpy on every process (all-gathers across hosts)."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
