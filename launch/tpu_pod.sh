#!/usr/bin/env bash
# s2s_jax on every worker of a Cloud TPU VM pod slice: one process per worker, joined
# through jax.distributed, which finds the coordinator, the process count and each
# worker's index by itself (coordinator_address=auto). Each worker feeds its own rows
# of every global batch. From your machine:
#
#   TPU=my-v5p-32 ZONE=us-east5-a WORKDIR=/mnt/runs/m30k launch/tpu_pod.sh \
#       --config=configs/multi30k.py:en-de --config.data.manual_dir=/mnt/data/multi30k
#
# Every argument goes to `python -m s2s_jax.main`. Environment:
#   TPU, ZONE  the TPU VM and its zone (PROJECT: optional, else gcloud's default)
#   WORKDIR    a directory all workers see, since Orbax writes one checkpoint from all
#              of them: a Filestore (NFS) mount or a gcsfuse-mounted bucket
#   REPO       the repository on the workers, with its .venv (default ~/s2s_jax), e.g.
#              gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all \
#                --command='git clone <url> ~/s2s_jax && cd ~/s2s_jax &&
#                           python3 -m venv .venv && .venv/bin/pip install -e . "jax[tpu]"'
# The job lives as long as the ssh sessions: run this inside tmux or screen. On a
# maintenance event the workers get SIGTERM, save a checkpoint at the same step and
# exit 0; the same command resumes.
set -euo pipefail

: "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR}"
repo=${REPO:-'~/s2s_jax'}
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"} \
  --worker=all \
  --command="cd $repo && .venv/bin/python -m s2s_jax.main $(printf '%q ' "$@") \
--workdir=$(printf '%q' "$WORKDIR") --config.distributed.coordinator_address=auto"
