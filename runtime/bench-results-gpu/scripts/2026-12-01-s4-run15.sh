#!/bin/bash
# Session 4, call 5: coop main_long with the row blocks dispatched last to first (_rev), against the default.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
C=coop_matrix/coop_long
K=coop_matrix/auto,"$C"_lk32_silu0_q_rev,"$C"_lk32_silu2_q_rev,"$C"_lk32_silu0_q_rev,coop_matrix/auto
timeout 200 ./.gl/bench_gpu --attention-only --lengths 4096,8192 --reps 30 --kernels $K --out $OUT/rev.json > $OUT/rev.log 2>&1; echo "rev rc=$?" >> $OUT/rev.log
grep -E "TFLOP|rc=|rror" $OUT/rev.log
