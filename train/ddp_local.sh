#!/usr/bin/env bash
# Runs train/train.py as N DistributedDataParallel processes on this machine (Gloo on the CPU,
# or NCCL with --device cuda), one per core or GPU, without torchrun: Debian 12's torchrun
# (PyTorch 1.13 on Python 3.11) dies at start with "AttributeError: 'NoneType' object has no
# attribute 'get'" in torch.distributed.elastic. This sets the variables torchrun would
# (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK), starts the ranks, and fails if any
# rank fails (the others are stopped then).
#
#   train/ddp_local.sh N [train.py options...]
#   e.g. train/ddp_local.sh 2 --phases dllm --threads 1 --init train/runs/ar.pt ...
#
# Rank 0's output goes to stdout; rank r > 0 writes to $DDP_LOG_DIR/rank<r>.log (default: the
# --runs folder if given, else the current folder). MASTER_PORT defaults to 29511; PYTHON picks the
# interpreter (default: the first of /usr/bin/python3 and python3 that imports torch).
set -uo pipefail
N=${1:-}
if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: train/ddp_local.sh N [train.py options...]  (N = number of processes)" >&2
  exit 2
fi
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # no cd: relative paths in the options stay valid
log_dir=${DDP_LOG_DIR:-}
if [ -z "$log_dir" ]; then
  log_dir=.
  args=("$@")
  for ((i = 0; i < ${#args[@]} - 1; i++)); do [ "${args[$i]}" = --runs ] && log_dir=${args[$((i + 1))]}; done
fi
mkdir -p "$log_dir"
PY=${PYTHON:-}
if [ -z "$PY" ]; then  # the interpreter that has torch (Debian's, or the first python3 on PATH)
  for c in /usr/bin/python3 python3; do
    if "$c" -c "import torch" 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "ddp_local.sh: no python3 with torch (apt-get install python3-torch)" >&2; exit 1; }
export MASTER_ADDR=127.0.0.1 MASTER_PORT=${MASTER_PORT:-29511} WORLD_SIZE=$N
# One OpenMP thread per rank unless told otherwise: N ranks on N cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
pids=()
for ((r = 0; r < N; r++)); do
  if [ "$r" = 0 ]; then
    RANK=$r LOCAL_RANK=$r "$PY" "$HERE/train.py" "$@" &
  else
    RANK=$r LOCAL_RANK=$r "$PY" "$HERE/train.py" "$@" > "$log_dir/rank$r.log" 2>&1 &
  fi
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
status=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then
    status=1
    kill "${pids[@]}" 2>/dev/null
  fi
done
[ "$status" = 0 ] || echo "ddp_local.sh: a rank failed (rank logs in $log_dir)" >&2
exit $status
