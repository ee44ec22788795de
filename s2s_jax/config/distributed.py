"""``config.distributed``: the processes of a multi-process (multi-host) job."""

import ml_collections

from s2s_jax.config.checks import check, positive


def defaults() -> ml_collections.ConfigDict:
    dist = ml_collections.ConfigDict()
    dist.coordinator_address = ""  # "host:port": multi-process; "auto": detect (TPU, SLURM,
    # Open MPI, ...; then num_processes and process_id are ignored); "": one process
    dist.num_processes = 1  # processes in the job
    dist.process_id = 0  # this process's index
    return dist


def validate(config) -> None:
    dist = config.distributed
    if dist.coordinator_address in ("", "auto"):
        return
    check(
        dist.coordinator_address.rpartition(":")[2].isdigit(),
        "distributed.coordinator_address",
        "must be host:port, 'auto' or empty",
        dist.coordinator_address,
    )
    positive(config, "distributed.num_processes")
    check(
        0 <= dist.process_id < dist.num_processes,
        "distributed.process_id",
        f"must be in [0, distributed.num_processes={dist.num_processes})",
        dist.process_id,
    )
