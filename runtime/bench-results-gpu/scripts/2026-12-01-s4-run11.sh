#!/bin/bash
# Session 4, call 1: shader-check modes x main_long coop forms at N = 8192; M-FALCON/retrieval with the
# BIG_MIN_WORKGROUPS selection; check_ops + cuda_train at 0cecdc4+ (the shared launch_bwd_wgmma).
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
cd .devcarry && gunzip -f check_ops.gz cuda_train.gz && chmod +x check_ops cuda_train && cd ..
C=coop_matrix
K=f32/auto,f16/auto,$C/coop_long_lk32_silu0,$C/coop_long_lk32_silu0_q,$C/coop_long_lk32_silu0_vp,$C/coop_long_lk32_silu0_q_vp,$C/coop_long_lk32_silu0_rs16,$C/coop_long_lk32_silu0_rs16_q,$C/coop_long_lk32_silu0_rs16_q_vp,$C/coop_long_lk64_silu0_q,$C/coop_long_lk64_silu0_rs16_q,$C/coop_long_lk32_silu2_q_vp
for m in on bounds off; do
  HSTU_SHADER_CHECKS=$m timeout 150 ./.gl/bench_gpu --attention-only --lengths 8192 --reps 10 --kernels $K --out $OUT/attn_$m.json > $OUT/attn_$m.log 2>&1; echo "attn $m rc=$?" >> $OUT/attn_$m.log
  grep -E "TFLOP|coop|f32|f16|rc=" $OUT/attn_$m.log | tail -40
done
timeout 120 ./.gl/bench_gpu --lengths 1 --reps 10 --out $OUT/mfalcon.json > $OUT/mfalcon.log 2>&1; echo "mfalcon rc=$?" >> $OUT/mfalcon.log
tail -30 $OUT/mfalcon.log
timeout 100 ./.devcarry/check_ops > $OUT/check_ops.log 2>&1; echo "check_ops rc=$?" >> $OUT/check_ops.log; tail -5 $OUT/check_ops.log
timeout 150 ./.devcarry/cuda_train --nocapture --test-threads 1 > $OUT/cuda_train.log 2>&1; echo "cuda_train rc=$?" >> $OUT/cuda_train.log; tail -5 $OUT/cuda_train.log
