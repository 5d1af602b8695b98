#!/usr/bin/env python3
"""Side-by-side peers for the hstu-cuda attention benchmark (run on the GPU machine).

    python3 kernels-cuda/bench/compare_torch.py --hstu-json OUT/hstu.json --json OUT/torch.json

* correctness floor: a PyTorch bf16 eager evaluation of hstu-spec section 6 on the f64 goldens
  (tests/golden/attention_*), the error the kernels must stay within 2x of;
* speed: torch SDPA (FlashAttention-2 and cuDNN backends, causal softmax attention; jagged
  batches padded to N) and the eager HSTU formula, H = 4, B = 65536 / N, median of
  triton.testing.do_bench; TFLOP/s with the hstu-spec section 6 count over actual lengths;
* merges the hstu-cuda JSON (from bench_attention) into one table with ratios.
"""
import argparse, json, math, os, random, sys
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
import triton.testing

H = 4


def hstu_eager(q, k, v, valid, alpha, n):
    """Spec section 6 for one dense block: q,k,v [B,H,L,D], valid [B or 1,1,L,L] bool."""
    s = alpha * torch.matmul(q, k.transpose(-1, -2))
    a = F.silu(s) * valid / n
    return torch.matmul(a.to(v.dtype), v)


def golden_floor(golden_dir):
    from safetensors.torch import load_file
    rows = []
    for case in ["attention_causal", "attention_targets"]:
        t = load_file(os.path.join(golden_dir, case, "attention.safetensors"))
        offs = t["seq_offsets"].tolist()
        nt = t["num_targets"].tolist() if "num_targets" in t else None
        alpha, n, mal = float(t["alpha"][0]), float(t["max_seq_len"][0]), int(t["max_attn_len"][0])
        dev = "cuda"
        q, k, v, do = (t[x].to(dev, torch.bfloat16).requires_grad_(x != "dout") for x in ["q", "k", "v", "dout"])
        outs = []
        for b in range(len(offs) - 1):
            s, e = offs[b], offs[b + 1]
            L = e - s
            U = L - (nt[b] if nt else 0)
            i = torch.arange(L, device=dev)
            idi, idj = torch.clamp(i, max=U)[:, None], torch.clamp(i, max=U)[None, :]
            d = idi - idj
            valid = (i[:, None] == i[None, :]) | ((d > 0) & ((d <= mal) if mal > 0 else True))
            qb, kb, vb = (x[s:e].transpose(0, 1)[None] for x in (q, k, v))
            outs.append(hstu_eager(qb, kb, vb, valid[None, None], alpha, n)[0].transpose(0, 1))
        out = torch.cat(outs)
        out.backward(do)
        err = {}
        for name, x in [("out", out), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)]:
            ref = t[name].to(dev)
            err[name] = (torch.linalg.norm(x.double() - ref) / torch.linalg.norm(ref)).item()
        rows.append({"case": case, "torch_bf16_rel_err": err})
        print(f"golden {case:18} torch bf16 eager rel err " + " ".join(f"{k} {v:.2e}" for k, v in err.items()))
    return rows


def flops_fwd(lens, d):
    return 2 * H * (d + d) * sum(l * l for l in lens) / 2


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def peers(n, d, jagged, do_eager):
    rng = random.Random(n * 7 + d + jagged)
    b = 65536 // n
    lens = [rng.randint(1, n) if jagged else n for _ in range(b)]
    q, k, v, do = (torch.randn(b, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    for x in (q, k, v):
        x.requires_grad_(True)
    fl = flops_fwd(lens, d)
    res = {"n": n, "d": d, "jagged": jagged, "tokens": sum(lens)}
    for name, backend in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
        try:
            with sdpa_kernel([backend]):
                f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
                o = f()
                fb = lambda: torch.autograd.grad(f(), (q, k, v), do)
                tf, tfb = bench(f), bench(fb)
            res[name] = {"fwd_ms": tf, "fwdbwd_ms": tfb, "fwd_tflops": fl / tf / 1e9, "fwdbwd_tflops": 3.5 * fl / tfb / 1e9}
            del o
        except Exception as e:  # backend unavailable for this shape
            res[name] = {"error": str(e)[:200]}
    if do_eager:
        try:
            i = torch.arange(n, device="cuda")
            valid = (i[:, None] >= i[None, :]).to(torch.bfloat16)[None, None]
            alpha = 1 / math.sqrt(d)
            f = lambda: hstu_eager(q, k, v, valid, alpha, n)
            fb = lambda: torch.autograd.grad(f(), (q, k, v), do)
            tf, tfb = bench(f), bench(fb)
            res["eager"] = {"fwd_ms": tf, "fwdbwd_ms": tfb, "fwd_tflops": fl / tf / 1e9, "fwdbwd_tflops": 3.5 * fl / tfb / 1e9}
        except Exception as e:
            res["eager"] = {"error": str(e)[:200]}
        torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden-dir", default="tests/golden")
    ap.add_argument("--hstu-json")
    ap.add_argument("--json")
    ap.add_argument("--ns", default="1024,2048,4096,8192")
    ap.add_argument("--ds", default="128,64,256")
    a = ap.parse_args()
    print("torch", torch.__version__, torch.cuda.get_device_name())
    floor = golden_floor(a.golden_dir)
    hstu = json.load(open(a.hstu_json)) if a.hstu_json and os.path.exists(a.hstu_json) else None
    if hstu:
        for c in hstu["checks"]:
            for f in floor:
                if f["case"] == c["case"]:
                    ok = all(c["rel_err"][k] <= 2 * f["torch_bf16_rel_err"][k] for k in f["torch_bf16_rel_err"])
                    f["hstu_cuda_rel_err"] = c["rel_err"]
                    f["within_2x_torch_bf16"] = ok
                    print(f"golden {c['case']:18} hstu-cuda rel err " + " ".join(f"{k} {v:.2e}" for k, v in c["rel_err"].items()) + f"  within 2x torch bf16: {ok}")
    rows = []
    for d in [int(x) for x in a.ds.split(",")]:
        for n in [int(x) for x in a.ns.split(",")]:
            for jagged in (False, True):
                rows.append(peers(n, d, jagged, do_eager=(d == 128 and not jagged)))
                torch.cuda.empty_cache()
    ours = {}
    if hstu:
        for r in hstu["results"]:
            ours[(r["n"], r["d"], r["jagged"], r["rab"])] = r
    print()
    print("| N | D | batch | hstu-cuda fwd / fwd+bwd | +rab fwd / fwd+bwd | SDPA flash fwd / fwd+bwd | SDPA cuDNN fwd / fwd+bwd | eager HSTU fwd / fwd+bwd | ours / cuDNN (fwd, fwd+bwd) |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda r: f"{r['fwd_tflops']:.0f} / {r['fwdbwd_tflops']:.0f}" if r and "fwd_tflops" in r else "-"
    for r in rows:
        o = ours.get((r["n"], r["d"], r["jagged"], False))
        orab = ours.get((r["n"], r["d"], r["jagged"], True))
        cu = r.get("cudnn", {})
        ratio = "-"
        if o and "fwd_tflops" in cu:
            ratio = f"{o['fwd_tflops'] / cu['fwd_tflops']:.2f}x, {o['fwdbwd_tflops'] / cu['fwdbwd_tflops']:.2f}x"
        print(f"| {r['n']} | {r['d']} | {'jagged' if r['jagged'] else 'full'} | {fmt(o)} | {fmt(orab)} | {fmt(r.get('flash'))} | {fmt(cu)} | {fmt(r.get('eager'))} | {ratio} |")
    if a.json:
        json.dump({"golden": floor, "peers": rows}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
