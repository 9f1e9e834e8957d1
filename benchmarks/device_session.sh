#!/usr/bin/env bash
# One lease of a GPU machine (1 GPU, 16 idle CPU cores), used for what the shared 2-core machine
# cannot give: quiet cores for CPU speed ratios, the GPU smoke test, long GAN runs on the GPU,
# and the full-budget DQN pairs against Stable-Baselines3. Each job is pinned to its own cores.
#
#   OUT=/tmp/out bash benchmarks/device_session.sh    # logs go to $OUT
#
# Pure-Python packages the machine lacks (gymnasium, stable-baselines3) travel as wheels in .whl/.
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/device-out}
LIMIT=${LIMIT:-330}  # seconds for each background job
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
{
  nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, sklearn, numpy; print('torch', torch.__version__, 'sklearn', sklearn.__version__, 'numpy', numpy.__version__)"
} >"$OUT/env.log" 2>&1

# DQN, CartPole-v1, the zoo's 50,000 steps: ours then Stable-Baselines3, one seed per core (2-6).
for s in 0 1 2 3 4; do
  taskset -c $((2 + s)) timeout "$LIMIT" $PY benchmarks/bench_rl.py --algos dqn --seeds $s \
    --log "$OUT/rl.jsonl" >>"$OUT/rl.log" 2>&1 &
done
# WGAN-GP on the GPU, 3 seeds x 2 mixtures, longer budgets than the CPU default (cores 7-12),
# plus two variants on ring8 (cores 13-15).
GAN="benchmarks/bench_gan.py --only mixtures --models wgan-gp --device cuda --trace-every ${TRACE:-250}"
c=7
for d in ring8 grid25; do
  for s in 0 1 2; do
    taskset -c $c timeout "$LIMIT" $PY $GAN --data $d --seeds $s --set epochs=${EPOCHS:-3000} >>"$OUT/gan.log" 2>&1 &
    c=$((c + 1))
  done
done
taskset -c 13 timeout "$LIMIT" $PY $GAN --data ring8 --seeds 0 --set epochs=${EPOCHS:-3000} --set gp_weight=1.0 >>"$OUT/gan.log" 2>&1 &
taskset -c 14 timeout "$LIMIT" $PY $GAN --data ring8 --seeds 0 --set epochs=${EPOCHS:-3000} --set "hidden_sizes=[512,512,512]" >>"$OUT/gan.log" 2>&1 &
taskset -c 15 timeout "$LIMIT" $PY $GAN --data ring8 --seeds 0 --set epochs=${EPOCHS:-3000} --set batch_size=1024 >>"$OUT/gan.log" 2>&1 &

# Foreground, cores 0-1: CPU speed ratios on quiet cores, then the GPU smoke test.
{
  taskset -c 0 $PY benchmarks/bench_mlp.py --repeats 7 --threads 1
  taskset -c 0,1 $PY benchmarks/bench_mlp.py --repeats 3 --threads 2
  taskset -c 0 $PY benchmarks/bench_rnn.py speed --threads 1 --repeats 3
} >"$OUT/bench.log" 2>&1
taskset -c 0,1 timeout 200 $PY benchmarks/gpu_check.py --epochs 3 --out /tmp/gpu-runs >"$OUT/gpu.log" 2>&1
wait
grep -h "^trace\|^| wgan" "$OUT/gan.log" | tail -60
grep -h "ratio\|^dqn" "$OUT/rl.log"
cat "$OUT/bench.log" | grep -v "^\s*$" | tail -30
cat "$OUT/gpu.log" | tail -30
