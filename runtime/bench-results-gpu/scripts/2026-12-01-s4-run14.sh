#!/bin/bash
# Session 4, call 4 (final defaults: HSTU_SHADER_CHECKS=bounds, coop_long_lk32_silu0_q with the tail barrier):
# the whole default benchmark, then the N = 8192 defaults under each shader-check mode.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
timeout 300 ./.gl/bench_gpu --reps 20 --out $OUT/full.json > $OUT/full.log 2>&1; echo "full rc=$?" >> $OUT/full.log
grep -vE "^ +(op|embedding|layer_norm|uvqk|attention|gating|out_gemm|l2_norm|topk|per-op)" $OUT/full.log
for m in on bounds off; do
  HSTU_SHADER_CHECKS=$m timeout 120 ./.gl/bench_gpu --attention-only --lengths 8192 --reps 30 --kernels f32/auto,f16/auto,coop_matrix/auto,coop_matrix/coop_long_lk32_silu0 --out $OUT/modes_$m.json > $OUT/modes_$m.log 2>&1; echo "modes $m rc=$?" >> $OUT/modes_$m.log
  grep -E "TFLOP|rc=|rror" $OUT/modes_$m.log | sed 's/attention N= 8192 B=  8 H=4 D=128 rab=false//'
done
