#!/bin/bash
# Session 4, call 7: main_long with vec4 score / a_ij tiles (cooperative loads and stores through
# vec4 pointers): correctness (every coop form, gpu_ops) then old vs new binary at N = 4096 / 8192.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
mkdir -p /work/main && [ -e /work/main/tests ] || ln -s $PWD/tests /work/main/tests
cd .devcarry && gunzip -f gpu_ops.gz bench_gpu_old.gz && chmod +x gpu_ops bench_gpu_old && cd ..
timeout 100 ./.devcarry/gpu_ops --nocapture --test-threads 1 > $OUT/h200_gpu_ops.log 2>&1; echo "gpu_ops rc=$?" >> $OUT/h200_gpu_ops.log
grep -E "test result|rc=|panicked" $OUT/h200_gpu_ops.log; grep "attention coop" $OUT/h200_gpu_ops.log | sort -t'|' -k3 -g | tail -2
K=coop_matrix/auto,coop_matrix/coop_long_lk32_silu0_q_vp
for b in old new; do
  bin=./.gl/bench_gpu; [ $b = old ] && bin=./.devcarry/bench_gpu_old
  timeout 100 $bin --attention-only --lengths 4096,8192 --reps 30 --kernels $K,$K --out $OUT/v4_$b.json > $OUT/v4_$b.log 2>&1; echo "$b rc=$?" >> $OUT/v4_$b.log
  echo "== $b"; grep -E "TFLOP|rc=|rror" $OUT/v4_$b.log
done
