#!/bin/bash
# ML-100K recipe confirmation: dropout 0.3 + lr 2e-3 (and neighbours), spec protocol and validated protocol (+ refit), CUDA and CPU trainers.
cd .devcarry && gunzip -f hstu.gz && chmod +x hstu && cd ..
export D=.devcarry/ml-100k/ml-100k.inter
python3 - <<'P'
import json
base=json.load(open('assets/ml-100k-hstu/config.json'))
def w(name, **kw):
    c=dict(base); c.update(kw); json.dump(c,open(f'/tmp/{name}.json','w'),indent=2)
w('drop3', input_dropout=0.3, linear_dropout=0.3)
w('drop4', input_dropout=0.4, linear_dropout=0.4)
w('large3', num_blocks=8,num_heads=2,attention_dim=25,linear_dim=25, input_dropout=0.3, linear_dropout=0.3)
P
one() {
  local n=$1 c=$2; shift 2
  local t0=$(date +%s.%N)
  timeout 300 ./.devcarry/hstu train --data $D --config $c --out $OUT/$n --no-progress "$@" > $OUT/$n.out 2> $OUT/$n.log; echo "rc=$?" >> $OUT/$n.log
  local t1=$(date +%s.%N)
  echo "wall_s $(python3 -c "print($t1-$t0)")" >> $OUT/$n.log
  ./.devcarry/hstu eval --model $OUT/$n --data $D > $OUT/$n.eval.json 2>> $OUT/$n.log
  rm -rf $OUT/$n/checkpoint
}
# validated run, then refit at its best epoch
valrefit() {
  local s=$1
  one val-d3lr2-s$s /tmp/drop3.json --device cuda --patience 0 --seed $s --lr 0.002
  local e=$(python3 -c "import json;print(json.load(open('$OUT/val-d3lr2-s$s.out'))['best_epoch'])")
  one refit-d3lr2-s$s /tmp/drop3.json --device cuda --refit --epochs $e --seed $s --lr 0.002
}
export -f one valrefit
{
for s in 6 7 8 9 10; do echo "one d3lr2-s$s /tmp/drop3.json --device cuda --eval-test --seed $s --lr 0.002"; done
for s in 1 2 3 4 5; do
  echo "one d3-s$s /tmp/drop3.json --device cuda --eval-test --seed $s"
  echo "one d4lr2-s$s /tmp/drop4.json --device cuda --eval-test --seed $s --lr 0.002"
  echo "one d3lr3-s$s /tmp/drop3.json --device cuda --eval-test --seed $s --lr 0.003"
  echo "one large-d3lr2-s$s /tmp/large3.json --device cuda --eval-test --seed $s --lr 0.002"
  echo "valrefit $s"
done
} > /tmp/jobs.txt
nvidia-smi --query-gpu=name,clocks.sm --format=csv
time (xargs -P 4 -L 1 bash -c '"$@"' _ < /tmp/jobs.txt)
nproc
time one cpu-d3lr2-s1 /tmp/drop3.json --device cpu --eval-test --seed 1 --lr 0.002
python3 - > $OUT/summary.txt <<'P'
import json,glob,os,re,collections
rows=collections.defaultdict(list)
for f in sorted(glob.glob(os.environ['OUT']+'/*.out')):
    n=os.path.basename(f)[:-4]
    try: o=json.load(open(f)); e=json.load(open(f[:-4]+'.eval.json'))
    except Exception as ex: print(n,'FAILED',open(f[:-4]+'.log').read()[-300:]); continue
    cfg=re.sub(r'-s\d+$','',n)
    b,l=o['best'],o['last']
    rows[cfg].append((b['HR@10'],l['HR@10'],b['NDCG@10'],e['HR@10'],e['NDCG@10'],o['wall_secs']))
    print(f"{n:18s} best ep {o.get('best_epoch')} {b.get('split','')} HR@10 {b['HR@10']:.4f} NDCG@10 {b['NDCG@10']:.4f} | last HR@10 {l['HR@10']:.4f} | hstu eval (test) HR@10 {e['HR@10']:.4f} NDCG@10 {e['NDCG@10']:.4f} | {o['wall_secs']:.1f}s")
print()
for cfg,r in rows.items():
    m=lambda i: sum(x[i] for x in r)/len(r)
    print(f"{cfg:14s} n={len(r)} best HR@10 mean {m(0):.4f} min {min(x[0] for x in r):.4f} | last {m(1):.4f} | eval-of-output test HR@10 mean {m(3):.4f} min {min(x[3] for x in r):.4f} NDCG@10 {m(4):.4f} | wall {m(5):.1f}s")
P
cat $OUT/summary.txt
mkdir -p $OUT/bundle && cp -r $OUT/refit-d3lr2-s1 $OUT/bundle/ && cp -r $OUT/val-d3lr2-s1 $OUT/bundle/
cd $OUT && tar czf bundle.tgz --remove-files bundle && tar czf all.tgz --remove-files $(ls | grep -v '\.tgz' | grep -v summary.txt)
