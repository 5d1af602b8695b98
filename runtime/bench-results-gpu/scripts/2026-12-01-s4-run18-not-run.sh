#!/bin/bash
# Session 4, call 8: main_long reading q, k, v through vec4<f16> views: every coop form, then new vs call-7 binary at N = 8192.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
mkdir -p /work/main && [ -e /work/main/tests ] || ln -s $PWD/tests /work/main/tests
cd .devcarry && gunzip -f gpu_ops.gz bench_gpu_old.gz && chmod +x gpu_ops bench_gpu_old && cd ..
timeout 60 ./.devcarry/gpu_ops --nocapture --test-threads 1 coop_attention_forms > $OUT/h200_gpu_ops_coop.log 2>&1; echo "gpu_ops rc=$?" >> $OUT/h200_gpu_ops_coop.log
grep -E "test result|rc=|panicked" $OUT/h200_gpu_ops_coop.log; grep "attention coop" $OUT/h200_gpu_ops_coop.log | sort -t'|' -k3 -g | tail -1
for b in new old; do
  bin=./.gl/bench_gpu; [ $b = old ] && bin=./.devcarry/bench_gpu_old
  timeout 40 $bin --attention-only --lengths 8192 --reps 30 --kernels coop_matrix/auto --out $OUT/g4_$b.json > $OUT/g4_$b.log 2>&1; echo "$b rc=$?" >> $OUT/g4_$b.log
  echo "== $b"; grep -E "TFLOP|rc=|rror" $OUT/g4_$b.log
done
