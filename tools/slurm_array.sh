#!/usr/bin/env bash
# One shard of a gradflow sweep per Slurm array task; `gradflow merge` joins them afterwards.
#
#   jid=$(sbatch --parsable --array=0-15 tools/slurm_array.sh phase.toml out/phase)
#   sbatch --dependency=afterok:$jid --wrap "build/gradflow merge out/phase.part-* -o out/phase"
#
# Task i of n runs `gradflow run SCENARIO --shard i/n -o OUTPREFIX.part-i` with the task's CPUs as threads.
# Shards interleave the (cell, replicate) pairs ((cell * replicates + replicate) % n == i), so every task gets
# a similar mix of cheap and expensive cells. A requeued or resubmitted task resumes its shard (--resume).
# Extra arguments go to `gradflow run` (e.g. --set network.units=1024). GRADFLOW overrides the executable.
#
# Without Slurm, the same script runs one shard: SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=4 \
#   SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=3 bash tools/slurm_array.sh phase.toml out/phase
#
#SBATCH --job-name=gradflow
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=gradflow-%A_%a.log
set -euo pipefail

usage="usage: sbatch --array=0-<n-1> tools/slurm_array.sh SCENARIO.toml OUTPREFIX [gradflow run options]"
scenario=${1:?$usage}
prefix=${2:?$usage}
shift 2
i=${SLURM_ARRAY_TASK_ID:?not a Slurm array task; $usage}
n=${SLURM_ARRAY_TASK_COUNT:?not a Slurm array task; $usage}
if [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ] || [ "${SLURM_ARRAY_TASK_MAX:-$((n - 1))}" != $((n - 1)) ]; then
  echo "slurm_array.sh: the array must be 0-$((n - 1)) without gaps or steps (got" \
       "${SLURM_ARRAY_TASK_MIN}-${SLURM_ARRAY_TASK_MAX} with $n tasks)" >&2
  exit 2
fi
gradflow=${GRADFLOW:-build/gradflow}
out="$prefix.part-$i"
resume=()
if [ -f "$out/run.json" ]; then resume=(--resume); fi
exec "$gradflow" run "$scenario" --shard "$i/$n" -o "$out" --threads "${SLURM_CPUS_PER_TASK:-0}" \
  "${resume[@]}" --quiet "$@"
