#!/bin/bash
# ML-100K quality grid under the spec section 8 protocol (--eval-test), CUDA trainer, 4 runs at a time.
cd .devcarry && gunzip -f hstu.gz && chmod +x hstu && cd ..
export D=.devcarry/ml-100k/ml-100k.inter
python3 - <<'P'
import json; c=json.load(open('assets/ml-100k-hstu/config.json'))
c.update(num_blocks=8,num_heads=2,attention_dim=25,linear_dim=25)
json.dump(c,open('/tmp/large.json','w'),indent=2)
c=json.load(open('assets/ml-100k-hstu/config.json')); c.update(input_dropout=0.3,linear_dropout=0.3)
json.dump(c,open('/tmp/drop3.json','w'),indent=2)
P
one() {
  local n=$1 c=$2; shift 2
  local t0=$(date +%s.%N)
  timeout 120 ./.devcarry/hstu train --device cuda --data $D --config $c --out $OUT/$n --no-progress "$@" > $OUT/$n.out 2> $OUT/$n.log; echo "rc=$?" >> $OUT/$n.log
  local t1=$(date +%s.%N)
  echo "wall_s $(python3 -c "print($t1-$t0)")" >> $OUT/$n.log
  rm -rf $OUT/$n/checkpoint $OUT/$n/model.safetensors
}
export -f one
H=assets/ml-100k-hstu/config.json
{
for s in 6 7 8 9 10; do echo "base-s$s $H --eval-test --seed $s"; done
for s in 1 2 3 4 5; do
  echo "lr2-s$s $H --eval-test --seed $s --lr 0.002"
  echo "lr4-s$s $H --eval-test --seed $s --lr 0.004"
  echo "b64-s$s $H --eval-test --seed $s --batch-size 64"
  echo "b32-s$s $H --eval-test --seed $s --batch-size 32"
  echo "neg512-s$s $H --eval-test --seed $s --negatives 512"
  echo "neg512lr2-s$s $H --eval-test --seed $s --negatives 512 --lr 0.002"
  echo "drop3lr2-s$s /tmp/drop3.json --eval-test --seed $s --lr 0.002"
  echo "ep200-s$s $H --eval-test --seed $s --epochs 200"
  echo "val-lr2-s$s $H --patience 0 --seed $s --lr 0.002"
  echo "large-lr2-s$s /tmp/large.json --eval-test --seed $s --lr 0.002"
  echo "large-neg512-s$s /tmp/large.json --eval-test --seed $s --negatives 512"
done
} > /tmp/jobs.txt
nvidia-smi --query-gpu=name,clocks.sm --format=csv
time (xargs -P 4 -L 1 bash -c 'one "$@"' _ < /tmp/jobs.txt)
python3 - > $OUT/summary.txt <<'P'
import json,glob,os,re,collections
rows=collections.defaultdict(list)
for f in sorted(glob.glob(os.environ['OUT']+'/*.out')):
    n=os.path.basename(f)[:-4]
    try: o=json.load(open(f))
    except Exception as e: print(n,'FAILED',open(f[:-4]+'.log').read()[-300:]); continue
    w=[l for l in open(f[:-4]+'.log') if l.startswith('wall_s')]
    cfg=re.sub(r'-s\d+$','',n)
    if 'best' in o and 'last' in o:
        b,l=o['best'],o['last']
        rows[cfg].append((b['HR@10'],l['HR@10'],b['NDCG@10'],o.get('best_epoch'),o['wall_secs']))
        print(f"{n:18s} best ep {o.get('best_epoch')} HR@10 {b['HR@10']:.4f} NDCG@10 {b['NDCG@10']:.4f} | last HR@10 {l['HR@10']:.4f} | {o['wall_secs']:.1f}s")
    else:
        print(n, json.dumps(o)[:600])
print()
for cfg,r in rows.items():
    m=lambda i: sum(x[i] for x in r)/len(r)
    print(f"{cfg:14s} n={len(r)} best HR@10 mean {m(0):.4f} min {min(x[0] for x in r):.4f} | last HR@10 mean {m(1):.4f} | NDCG@10 {m(2):.4f} | wall {m(4):.1f}s")
P
cat $OUT/summary.txt
cd $OUT && tar czf all.tgz --remove-files $(ls | grep -v all.tgz | grep -v summary.txt)
