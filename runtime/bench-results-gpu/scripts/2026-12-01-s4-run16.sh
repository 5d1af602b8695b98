#!/bin/bash
# Session 4, call 6: the cross-vendor GPU tests (hstu-tests gpu_ops incl. every coop attention form,
# gpu_model, gpu_shapes) on the H200's Vulkan driver, with the new defaults.
for f in .gl/*.deb; do dpkg -x $f / ; done; ldconfig; export WGPU_BACKEND=vulkan
mkdir -p /work/main && [ -e /work/main/tests ] || ln -s $PWD/tests /work/main/tests
cd .devcarry && for n in gpu_ops gpu_model gpu_shapes; do gunzip -f $n.gz; chmod +x $n; done; cd ..
for n in gpu_ops gpu_model gpu_shapes; do
  timeout 150 ./.devcarry/$n --nocapture --test-threads 1 > $OUT/h200_$n.log 2>&1; echo "$n rc=$?" >> $OUT/h200_$n.log
  grep -E "^test |test result|rc=|panicked|SKIP" $OUT/h200_$n.log | head -30
done
