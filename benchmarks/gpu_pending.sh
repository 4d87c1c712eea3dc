#!/usr/bin/env bash
# The GPU measurements still owed (issue 7; item 7: BEGAN; item 8: ProGAN; item 9: BigGAN;
# items 11-12: the ViT discriminator, without and with ViTGAN's fixes; item 13: consistency
# regularisation; item 14: conditional StyleGAN2; item 15: D-corrected StyleGAN2 samples;
# item 16: BigGAN-deep; item 17: R3GAN),
# in the order of their value, each
# bounded by `timeout` so that a device call (600 s at most) ends with what it got. Run from the
# repository root on the GPU machine, with the packages it lacks installed and one anime zip
# at $ZIP:
#
#   ZIP=carry/data/faces64-000.zip OUT=/tmp/out bash benchmarks/gpu_pending.sh
#
# Every JSON row lands in $OUT; copy them into benchmarks/README.md with the date. All
# seventeen items take up to ~85 minutes: ITEMS="1 2 3" (default: all) runs a subset, so that
# eleven device calls of 600 s cover them (ITEMS="1 2 3 4", then ITEMS="5 6 7", then ITEMS="8",
# then ITEMS="9 10", then ITEMS="11", then ITEMS="12", then ITEMS="13", then ITEMS="14", then
# ITEMS="15", then ITEMS="16", then ITEMS="17"); one session's 30 device minutes hold the
# first three.
set -u
ITEMS=${ITEMS:-1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17}
want() { [[ " $ITEMS " == *" $1 "* ]]; }
ZIP=${ZIP:?set ZIP to one faces64-*.zip}
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
quiet() { grep -v '^[WI][0-9]'; }
# throughput SECONDS ARGS...: one benchmarks/throughput.py run within SECONDS, rows to $OUT.
throughput() { timeout "$1" python3 benchmarks/throughput.py "${@:2}" --out=$OUT/throughput.jsonl 2>&1 | quiet; }

# 1. Several iterations per call inside training (bf16, batch 128): steps/s of the progress
#    line, K=1 vs K=10, on the device-fed anime faces (compile included in neither rate).
if want 1; then
  for k in 1 10; do
    timeout 150 python3 launch.py --config=configs/dcgan.py --workdir=/tmp/k$k \
      --config.data.source=zip:$ZIP --config.model.dtype=bfloat16 --config.train.num_steps=4000 \
      --config.train.iterations_per_call=$k --config.log.every=1000 --config.sample.every=4000 \
      --config.checkpoint.every=4000 --config.log.diagnostics=False 2>&1 | quiet \
      | grep -E "step (2000|3000|4000)/" | tee "$OUT/train_k$k.txt"
  done
fi

# 2. Fused real+fake D passes (train.d_passes=fused) against separate ones, bf16, in one call.
if want 2; then
  for passes in separate fused; do
    throughput 90 --config=configs/dcgan.py --iters=50 --batches=128,2048 --dtypes=bfloat16 \
      --config.train.d_passes=$passes
  done
fi

# 3. The stacked UpConv with its kernel gradient as matrix products (model.upconv=stacked_gemm)
#    against the plain stacked form; phases (the default) is item 2's `separate` rows.
if want 3; then
  for upconv in stacked_gemm stacked; do
    throughput 90 --config=configs/dcgan.py --iters=50 --batches=128,2048 --dtypes=bfloat16 \
      --config.model.upconv=$upconv
  done
fi

# 4. Scanned vs unrolled D updates on SNGAN-ResNet (5 D steps): compile seconds and images/s.
if want 4; then
  for loop in unroll scan; do
    throughput 120 --config=configs/sngan_resnet.py --iters=20 --dtypes=bfloat16 \
      --config.train.d_loop=$loop
  done
fi

# 5. StyleGAN2 in bf16 (its compile took over 80 s before).
if want 5; then
  throughput 200 --config=configs/stylegan2.py --iters=20 --dtypes=float32,bfloat16
fi

# 6. Which convolution the stacked UpConv loses its time in (rows carry their HLO op).
if want 6; then
  timeout 80 python3 benchmarks/profile_step.py --config=configs/dcgan.py \
    --config.model.upconv=stacked --batch=2048 --dtype=bfloat16 --top=12 \
    --out=$OUT/profile.jsonl 2>&1 | quiet | tail -1
fi

# 7. BEGAN (configs/began.py) on the anime faces for the 3 minutes benchmarks/architectures.md
#    gave DCGAN, SNGAN-ResNet and StyleGAN2: its throughput, FD-anime, AFD, duplicates and
#    diversity beside theirs, and whether its k engages (metrics.jsonl: began_k).
if want 7; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/began.py \
    --source=zip:$ZIP --root=/tmp/arch --out=$OUT/architectures.jsonl 2>&1 | quiet | tail -3
  cp /tmp/arch/began/metrics.jsonl "$OUT/began_metrics.jsonl" 2>/dev/null
fi

# 8. ProGAN (configs/progan.py, bf16): images/s at 4x4 (the schedule's start) and at 64x64
#    (growth 0/0: full size from the start), with lax.switch (the GPU's default: only the
#    level's layers run) against select (the CPU's: every resolution runs).
if want 8; then
  for branching in switch select; do
    throughput 120 --config=configs/progan.py --iters=20 --dtypes=bfloat16 \
      --config.model.branching=$branching
    throughput 120 --config=configs/progan.py --iters=20 --dtypes=bfloat16 \
      --config.model.branching=$branching --config.model.growth.stable_iters=0 \
      --config.model.growth.fade_iters=0
  done
fi

# 9. BigGAN (configs/biggan.py: conditional on hair and eye colour, from the tags.csv beside
#    $ZIP) for the same 3 minutes: throughput and the metrics beside the others', plus its tag
#    hit rate (benchmarks/README.md has its CPU run against the conditional SNGAN-ResNet).
if want 9; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/biggan.py \
    --source=zip:$ZIP --root=/tmp/arch --extra_metrics=biggan=tag_hit_rate \
    --out=$OUT/architectures_biggan.jsonl 2>&1 | quiet | tail -3
fi

# 10. Gradient accumulation (train.microbatches): images/s and XLA's memory at batch 2048 bf16
#     with 1 and 4 micro-batches per update (runs in the ITEMS="9 10" call).
if want 10; then
  for m in 1 4; do
    throughput 120 --config=configs/dcgan.py --iters=20 --batches=2048 --dtypes=bfloat16 \
      --config.train.microbatches=$m
  done
fi

# 11. DCGAN's G against the vision-transformer D (configs/vit_d.py) for the same 3 minutes as
#     the CNN recipes in benchmarks/architectures.md: throughput and the metrics beside theirs.
if want 11; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/vit_d.py \
    --source=zip:$ZIP --root=/tmp/arch --out=$OUT/architectures_vit.jsonl 2>&1 | quiet | tail -3
fi

# 12. Item 11's run with ViTGAN's fixes for a transformer D: L2 attention with tied query/key
#     weights, spectral normalisation with each map's initial scale (improved SN) and
#     overlapping 16-pixel patch windows (models/vit.py).
if want 12; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/vit_d.py \
    --source=zip:$ZIP --root=/tmp/arch_vitgan --out=$OUT/architectures_vitgan.jsonl \
    --overrides=model.vit.attention=l2,model.d_spectral_norm=True,model.vit.improved_sn=True,model.vit.patch_overlap=4 \
    2>&1 | quiet | tail -3
fi

# 13. DCGAN with balanced consistency regularisation (penalty.use=cr,cr_fake: weight 10 each,
#     a random flip and translation) for the 3 minutes of benchmarks/architectures.md's DCGAN row (which
#     collapsed on the H100): throughput and metrics beside it.
if want 13; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/dcgan.py \
    --source=zip:$ZIP --root=/tmp/arch_bcr --out=$OUT/architectures_bcr.jsonl \
    --overrides=penalty.use=cr,cr_fake 2>&1 | quiet | tail -3
fi

# 14. Conditional StyleGAN2 (configs/stylegan2_tags.py: labels into the mapping network,
#     projection D) for the same 3 minutes as item 9's BigGAN: throughput, the metrics and
#     its tag hit rate beside BigGAN's.
if want 14; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/stylegan2_tags.py \
    --source=zip:$ZIP --root=/tmp/arch --extra_metrics=stylegan2_tags=tag_hit_rate \
    --out=$OUT/architectures_stylegan2_tags.jsonl 2>&1 | quiet | tail -3
fi

# 15. D-corrected samples of a StyleGAN2 (non-saturating loss, no BatchNorm in D: the case
#     the CPU runs left open, benchmarks/mh_images.md): a 3-minute unconditional run as in
#     benchmarks/architectures.md, then its plain samples, and MH with 50 proposals per
#     sample with D as saved and after 500 updates against the frozen G-EMA (evaluate's
#     --mh_steps / --mh_tune), on 2,000 samples against 5,000 reference images.
if want 15; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/stylegan2.py \
    --source=zip:$ZIP --root=/tmp/arch_mh --out=$OUT/architectures_mh.jsonl 2>&1 | quiet | tail -3
  timeout 240 python3 benchmarks/mh_images.py --workdir=/tmp/arch_mh/stylegan2 --tune=0,500 \
    --mh_steps=50 --num_samples=2000 --num_real=5000 --out=$OUT/mh_images_stylegan2.md \
    2>&1 | quiet | tail -8
fi

# 16. BigGAN-deep (configs/biggan_deep.py: biggan.py with two bottleneck blocks per resolution
#     and all of z fed to every G block) for the same 3 minutes as item 9's BigGAN: throughput,
#     the metrics and its tag hit rate beside BigGAN's (benchmarks/README.md has both on the CPU).
if want 16; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/biggan_deep.py \
    --source=zip:$ZIP --root=/tmp/arch --extra_metrics=biggan_deep=tag_hit_rate \
    --out=$OUT/architectures_biggan_deep.jsonl 2>&1 | quiet | tail -3
fi

# 17. R3GAN (configs/r3gan.py: RpGAN + R1 + R2 on a normalisation-free grouped-bottleneck
#     ResNet) for the 3 minutes benchmarks/architectures.md gave DCGAN, SNGAN-ResNet and
#     StyleGAN2, at 64x64 with the FFHQ-64 widths, then its bf16 throughput at batch 64, and
#     bf16 without its augmentations (ADA's pipeline and a cutout, computed at every p: their
#     cost).
if want 17; then
  timeout 330 python3 benchmarks/architectures.py --minutes=3 --configs=configs/r3gan.py \
    --source=zip:$ZIP --root=/tmp/arch --out=$OUT/architectures_r3gan.jsonl 2>&1 | quiet | tail -3
  throughput 150 --config=configs/r3gan.py --iters=20 --batches=64 --dtypes=float32,bfloat16
  throughput 100 --config=configs/r3gan.py --iters=20 --batches=64 --dtypes=bfloat16 \
    --config.augment.policy= --config.augment.p_final=-1
fi
