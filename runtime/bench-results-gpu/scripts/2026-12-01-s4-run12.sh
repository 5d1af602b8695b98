#!/bin/bash
# Session 4, call 2: main_long forms (q staged in workgroup memory, v prefetch), each listed twice
# (forward then reverse order), 30 reps, under HSTU_SHADER_CHECKS=bounds (new default) and off.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
C=coop_matrix/coop_long
A="$C"_lk32_silu0,"$C"_lk32_silu0_q_vp,"$C"_lk32_silu2_q_vp,"$C"_lk32_silu0_qs,"$C"_lk32_silu0_qs_vp,"$C"_lk32_silu2_qs_vp,"$C"_lk32_silu1_qs_vp,"$C"_lk32_silu0_rs16_q_vp,"$C"_lk64_silu0_qs,"$C"_lk32_silu0_q
B=$(echo $A | tr ',' '\n' | tac | paste -sd,)
for m in bounds off; do
  HSTU_SHADER_CHECKS=$m timeout 200 ./.gl/bench_gpu --attention-only --lengths 8192 --reps 30 --kernels f32/auto,f16/auto,$A,$B --out $OUT/sweep_$m.json > $OUT/sweep_$m.log 2>&1; echo "sweep $m rc=$?" >> $OUT/sweep_$m.log
  grep -E "TFLOP|rc=|rror" $OUT/sweep_$m.log | sed 's/attention N= 8192 B=  8 H=4 D=128 rab=false//' | tail -30
done
