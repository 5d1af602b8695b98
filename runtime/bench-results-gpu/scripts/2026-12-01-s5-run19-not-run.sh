#!/bin/bash
# Session 5, call 1: main_long reading q, k, v through vec4<f16> views. Correctness (every coop form,
# gpu_ops), then new vs HEAD (575a402) binary at N = 8192 twice, interleaved; then the new binary's
# full attention table (f32/f16/coop at 1024/4096/8192) and coop with HSTU_SHADER_CHECKS=off.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
mkdir -p /work/main && [ -e /work/main/tests ] || ln -s $PWD/tests /work/main/tests
cd .devcarry && gunzip -f gpu_ops.gz bench_gpu_old.gz && chmod +x gpu_ops bench_gpu_old && cd ..
timeout 100 ./.devcarry/gpu_ops --nocapture --test-threads 1 > $OUT/h200_gpu_ops.log 2>&1; echo "gpu_ops rc=$?" >> $OUT/h200_gpu_ops.log
grep -E "test result|rc=|panicked" $OUT/h200_gpu_ops.log; grep "attention coop" $OUT/h200_gpu_ops.log | sort -t'|' -k3 -g | tail -2
for r in 1 2; do for b in new old; do
  bin=./.gl/bench_gpu; [ $b = old ] && bin=./.devcarry/bench_gpu_old
  timeout 60 $bin --attention-only --lengths 8192 --reps 30 --kernels coop_matrix/auto,coop_matrix/auto --out /tmp/ab_$b$r.json > $OUT/ab_$b$r.log 2>&1; echo "$b$r rc=$?" >> $OUT/ab_$b$r.log
  echo "== $b$r"; grep -E "TFLOP|rc=|rror" $OUT/ab_$b$r.log | tail -4
done; done
timeout 200 ./.gl/bench_gpu --attention-only --lengths 1024,4096,8192 --reps 30 --out $OUT/attn_table.json > $OUT/attn_table.log 2>&1; echo "table rc=$?" >> $OUT/attn_table.log
tail -20 $OUT/attn_table.log
HSTU_SHADER_CHECKS=off timeout 60 ./.gl/bench_gpu --attention-only --lengths 8192 --reps 30 --kernels coop_matrix/auto,coop_matrix/auto --out /tmp/off.json > $OUT/off.log 2>&1; echo "off rc=$?" >> $OUT/off.log
tail -6 $OUT/off.log
