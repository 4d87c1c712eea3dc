#!/usr/bin/env bash
# The GPU measurements still owed (issue 7), in the order of their value, each bounded by
# `timeout` so that one device call (600 s at most) finishes with what it got. Run from the
# repository root on the GPU machine, with the packages it lacks installed and one anime zip
# at $ZIP:
#
#   ZIP=carry/data/faces64-000.zip OUT=/tmp/out bash benchmarks/gpu_pending.sh
#
# Every JSON row lands in $OUT; copy them into benchmarks/README.md with the date.
set -u
ZIP=${ZIP:?set ZIP to one faces64-*.zip}
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
quiet() { grep -v '^[WI][0-9]'; }
T="python3 benchmarks/throughput.py --config=configs/dcgan.py --iters=50 --out=$OUT/throughput.jsonl"

# 1. Several iterations per call inside training (bf16, batch 128): steps/s of the progress
#    line, K=1 vs K=10, on the device-fed anime faces (compile included in neither rate).
for k in 1 10; do
  timeout 150 python3 launch.py --config=configs/dcgan.py --workdir=/tmp/k$k \
    --config.data.source=zip:$ZIP --config.model.dtype=bfloat16 --config.train.num_steps=4000 \
    --config.train.iterations_per_call=$k --config.log.every=1000 --config.sample.every=4000 \
    --config.checkpoint.every=4000 --config.log.diagnostics=False 2>&1 | quiet \
    | grep -E "step (2000|3000|4000)/" | tee "$OUT/train_k$k.txt"
done

# 2. Fused real+fake D passes (train.d_passes=fused) against separate ones, bf16, in one call.
for passes in separate fused; do
  timeout 90 python3 benchmarks/throughput.py --config=configs/dcgan.py --iters=50 \
    --batches=128,2048 --dtypes=bfloat16 --config.train.d_passes=$passes \
    --out=$OUT/throughput.jsonl 2>&1 | quiet
done

# 3. The stacked UpConv with its kernel gradient as matrix products (model.upconv=stacked_gemm)
#    against the plain stacked form; phases (the default) is item 2's `separate` rows.
for upconv in stacked_gemm stacked; do
  timeout 90 python3 benchmarks/throughput.py --config=configs/dcgan.py --iters=50 \
    --batches=128,2048 --dtypes=bfloat16 --config.model.upconv=$upconv \
    --out=$OUT/throughput.jsonl 2>&1 | quiet
done

# 4. Scanned vs unrolled D updates on SNGAN-ResNet (5 D steps): compile seconds and images/s.
for loop in unroll scan; do
  timeout 120 python3 benchmarks/throughput.py --config=configs/sngan_resnet.py --iters=20 \
    --dtypes=bfloat16 --config.train.d_loop=$loop --out=$OUT/throughput.jsonl 2>&1 | quiet
done

# 5. StyleGAN2 in bf16 (its compile took over 80 s before).
timeout 200 python3 benchmarks/throughput.py --config=configs/stylegan2.py --iters=20 \
  --dtypes=float32,bfloat16 --out=$OUT/throughput.jsonl 2>&1 | quiet

# 6. Which convolution the stacked UpConv loses its time in (rows carry their HLO op).
timeout 80 python3 benchmarks/profile_step.py --config=configs/dcgan.py \
  --config.model.upconv=stacked --batch=2048 --dtype=bfloat16 --top=12 \
  --out=$OUT/profile.jsonl 2>&1 | quiet | tail -1
