#!/usr/bin/env bash
# A multi-host job on one machine: N s2s_jax processes on CPU, joined through
# jax.distributed with the coordinator on 127.0.0.1. For testing what runs on a
# TPU pod or a GPU cluster. From the repository root:
#
#   launch/local_multiprocess.sh 2 --config=configs/default.py --workdir=runs/two
#
# Every argument after N goes to `python -m s2s_jax.main`. Environment:
#   DEVICES_PER_PROCESS  simulated CPU devices of each process (default 1)
#   PORT                 coordinator port (default: a free one)
#   PYTHON               interpreter (default: python3)
# SIGTERM or Ctrl-C is passed on to every process: they save a checkpoint at the
# same step and exit 0. Exits with the first non-zero status of a process, else 0.
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_PROCESSES [s2s_jax.main flags...]" >&2
  exit 2
fi
num_processes=$1
shift
python=${PYTHON:-python3}
port=${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
for ((i = 0; i < num_processes; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-1} ${XLA_FLAGS:-}" \
  JAX_PLATFORMS=cpu \
    "$python" -m s2s_jax.main "$@" \
      --config.distributed.coordinator_address="127.0.0.1:$port" \
      --config.distributed.num_processes="$num_processes" \
      --config.distributed.process_id="$i" &
  pids+=($!)
done

status=0
for pid in "${pids[@]}"; do
  while true; do
    code=0
    wait "$pid" || code=$?
    # A trapped signal interrupts `wait` while the process still runs: wait again.
    kill -0 "$pid" 2>/dev/null || break
  done
  if [[ $status -eq 0 && $code -ne 0 ]]; then status=$code; fi
done
exit "$status"
