"""Devices: the only module that builds meshes, shardings or calls jax.distributed.

Data parallelism is ``jax.jit`` over a one-axis ``Mesh`` named ``data``: the batch is
sharded along it, parameters and optimizer state are replicated. The same code runs on
one device, on N simulated CPU devices and on several hosts, where every process
contributes its local rows of the global batch.
"""

from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(config) -> None:
    """Starts JAX's multi-controller runtime when the config asks for it.

    ``config.distributed.coordinator_address`` empty means a single process.
    """
    dist = config.distributed
    if dist.coordinator_address:
        jax.distributed.initialize(dist.coordinator_address, dist.num_processes,
                                   dist.process_id)
        logging.info("jax.distributed: process %d of %d", jax.process_index(),
                     jax.process_count())


def make_mesh() -> Mesh:
    """All devices of all processes on the ``data`` axis (XLA propagates shardings)."""
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                         axis_types=(jax.sharding.AxisType.Auto,))


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
    return {key: value[index * rows:(index + 1) * rows]
            for key, value in global_batch.items()}


def shard_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows ``[local_batch, ...]`` -> global arrays sharded on ``data``."""
    sharding = batch_sharded(mesh)
    return {key: jax.make_array_from_process_local_data(sharding, value)
            for key, value in local_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree of host or device arrays replicated on every device."""
    return jax.device_put(tree, replicated(mesh))


def fetch(tree: Any) -> Any:
    """Global arrays -> numpy on every process (all-gathers across hosts)."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
