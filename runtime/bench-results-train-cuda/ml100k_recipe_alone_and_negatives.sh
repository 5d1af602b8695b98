#!/bin/bash
# Verification of c10b71a+ on the H200: the CUDA trainer tests, more than 255 negatives, and single-run wall times of the ML-100K recipe.
cd .devcarry && gunzip -f hstu.gz cuda_train.gz && chmod +x hstu cuda_train && cd ..
export D=.devcarry/ml-100k/ml-100k.inter
timeout 200 ./.devcarry/cuda_train --nocapture --test-threads 1 > $OUT/cuda_train_test.log 2>&1; echo "cuda_train rc=$?" >> $OUT/cuda_train_test.log
tail -5 $OUT/cuda_train_test.log
python3 - <<'P'
import json
c=json.load(open('assets/ml-100k-hstu/config.json'))
c.update(num_blocks=8,num_heads=2,attention_dim=25,linear_dim=25)
json.dump(c,open('/tmp/large3.json','w'),indent=2)
P
run() {
  local n=$1; shift
  local t0=$(date +%s.%N)
  timeout 120 ./.devcarry/hstu train --device cuda --data $D --out /tmp/$n --no-progress "$@" > $OUT/$n.out 2> /tmp/$n.log; echo "$n rc=$?"; tail -2 /tmp/$n.log
  local t1=$(date +%s.%N)
  python3 -c "import json;o=json.load(open('$OUT/$n.out'));print('$n', 'wall_s %.2f'%($t1-$t0), 'train wall_secs %.2f'%o['wall_secs'], 'best epoch', o['best_epoch'], 'best', o['best']['split'], 'HR@10 %.4f'%o['best']['HR@10'], 'last HR@10 %.4f'%o['last']['HR@10'])"
}
# alone on the GPU: wall times of 101 epochs with the recipe
run hstu-recipe-s1 --config assets/ml-100k-hstu/config.json --eval-test --seed 1 --lr 0.002
run large-recipe-s1 --config /tmp/large3.json --eval-test --seed 1 --lr 0.002
# more than 255 negatives (the limit before c10b71a)
for k in 512 1024 2047; do run neg$k-s1 --config assets/ml-100k-hstu/config.json --eval-test --seed 1 --lr 0.002 --negatives $k; done
run neg2048 --config assets/ml-100k-hstu/config.json --eval-test --seed 1 --negatives 2048 --epochs 1
