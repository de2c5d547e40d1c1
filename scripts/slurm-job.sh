#!/bin/bash
# @@DESCRIPTION@@
# A SLURM batch job, written by `tune launch slurm` into <run folder>/job/slurm.sh:
#   sbatch @@SCRIPT@@
# It trains the recipe frozen next to it (job/recipe.yaml: the resolved recipe, output.dir pinned to
# this run folder), so a job that waits in the queue for days runs what was launched. Logs go to
# job/logs/<job id>.log. SLURM sends USR1 to this script @@SAVE_BEFORE_S@@ s before the time limit
# (--signal=B:USR1@@@SAVE_BEFORE_S@@), which forwards it to every tune process; the run saves one complete
# checkpoint and the job resubmits itself (at most @@MAX_RESUBMITS@@ times) to continue it.
# Exit status: 0 finished, 75 preempted (checkpoint saved), anything else failed.
#SBATCH --job-name=@@JOB_NAME@@
#SBATCH --nodes=@@NODES@@
#SBATCH --ntasks-per-node=1
#SBATCH --time=@@WALLTIME@@
#SBATCH --signal=B:USR1@@@SAVE_BEFORE_S@@
#SBATCH --output=@@RUN_DIR@@/job/logs/slurm-%j.out
@@SBATCH_OPTIONS@@

set -uo pipefail
RUN_DIR=@@RUN_DIR@@
JOB_DIR="$RUN_DIR/job"
JOB_SCRIPT="$JOB_DIR/slurm.sh"
MAX_RESUBMITS=@@MAX_RESUBMITS@@
SAVE_SIGNAL=USR1
NODES=@@NODES@@
. "$JOB_DIR/common.sh"
tune_job_begin "${SLURM_JOB_ID:-local-$$}"

tune_job_resubmit() {
    sbatch --export="ALL,TUNE_RESUBMITS=$1" "$JOB_SCRIPT"
}

if ! type module >/dev/null 2>&1 && [ -f /etc/profile.d/modules.sh ]; then
    . /etc/profile.d/modules.sh
fi
@@MODULE_LOADS@@
export NCCL_DEBUG=${NCCL_DEBUG:-WARN} CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1} PYTHONFAULTHANDLER=1

if [ -z "${SLURM_JOB_NODELIST:-}" ]; then
    tune_job_say "no \$SLURM_JOB_NODELIST: submit this script with sbatch"
    exit 2
fi
if [ "${SLURM_JOB_NUM_NODES:-$NODES}" -ne "$NODES" ]; then
    tune_job_say "the job has $SLURM_JOB_NUM_NODES node(s), the recipe asks for $NODES (launch.nodes): submit with --nodes=$NODES"
    exit 2
fi
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-$((10000 + RANDOM % 1000))}
STATUS_DIR="$JOB_DIR/status/${SLURM_JOB_ID:-local-$$}"
rm -rf "$STATUS_DIR"
tune_job_say "$NODES node(s), first $MASTER_ADDR; launching with srun"
# One launcher per node: srun starts node.sh once per node, and node.sh starts torchrun with that
# node's rank (SLURM_PROCID).
tune_job_launch srun --nodes="$NODES" --ntasks-per-node=1 --kill-on-bad-exit=0 \
    "$JOB_DIR/node.sh" "$MASTER_ADDR" "$MASTER_PORT" "$STATUS_DIR"
tune_job_finish "$TUNE_LAUNCHER_RC" "$STATUS_DIR"
