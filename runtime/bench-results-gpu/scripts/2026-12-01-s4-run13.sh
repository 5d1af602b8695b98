#!/bin/bash
# Session 4, call 3: main_long without the tail barrier, q in registers (new coop default) and
# neighbours, twice each in both orders; then the whole default benchmark (attention, retrieval,
# M-FALCON) with the new defaults (HSTU_SHADER_CHECKS=bounds, coop_long_lk32_silu0_q).
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
C=coop_matrix/coop_long
A="$C"_lk32_silu0_q,"$C"_lk32_silu2_q,"$C"_lk32_silu1_q,"$C"_lk64_silu0_q,"$C"_lk64_silu2_q,"$C"_lk32_silu0_q_vp,"$C"_lk32_silu0,coop_matrix/coop
B=$(echo $A | tr ',' '\n' | tac | paste -sd,)
timeout 200 ./.gl/bench_gpu --attention-only --lengths 8192 --reps 30 --kernels $A,$B --out $OUT/sweep3.json > $OUT/sweep3.log 2>&1; echo "sweep3 rc=$?" >> $OUT/sweep3.log
grep -E "TFLOP|rc=|rror" $OUT/sweep3.log | sed 's/attention N= 8192 B=  8 H=4 D=128 rab=false//'
timeout 330 ./.gl/bench_gpu --reps 20 --out $OUT/full.json > $OUT/full.log 2>&1; echo "full rc=$?" >> $OUT/full.log
grep -vE "^ +(op|embedding|layer_norm|uvqk|attention|gating|out_gemm|l2_norm|topk|per-op)" $OUT/full.log
