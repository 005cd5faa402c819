"""The one GPU check: correctness on CUDA, every notebook with its cuda settings, and the
decode/prefill benchmarks, all written as JSON under one folder.

    bash gpu/check.sh                          # on one H100/H200: about 6-8 minutes
    bash gpu/check.sh --device cpu --tiny      # the dry run the test suite runs (tiny sizes)

Sections (each writes <out>/<section>.json; summary.json lists them with their status):
    env        device, versions, commit, measured copy bandwidth and matmul throughput
    cuda_tests every variant x mode in bf16 and fp16 through SDPA with the flash and the
               memory-efficient backends pinned (and flash-attn when importable), each
               within reference.tolerance: error vs the float64 layer <= 2x the error of
               the einsum reference in the same dtype (+ rounding); cached decoding == the full forward
               (fp32 on the device; Triton kernels on the decode steps where they apply)
    kernels    the Triton decode kernels, compiled (interpreted on CPU), vs float64 within
               reference.tolerance
    train      one training step of a TinyLM per variant under bf16 autocast
    static     static-shape decoding compiled once (mode="reduce-overhead" on CUDA): equal
               to eager decoding, graph count fixed as the sequence grows, step times
    bench      decode (GQA-8 on SDPA flash, MLA absorbed, TPA factored Triton, Tucker latent
               Triton; contexts x batches, bf16, floors at the measured copy bandwidth) and
               prefill (with MQA at Tucker's head dim), and the issue's targets
    notebooks  every book chapter executed as a Colab GPU reader would (device = cuda)
    pytest     on CUDA: the test modules with GPU cases (kernels, functional)

Exit status 0 when no check failed ("unsupported" backend/shape pairs are recorded, not
failures). See gpu/README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import subprocess
import sys
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda if available")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU dry run)")
    p.add_argument("--out", default=None, help="output folder (default results/gpu/<device>-<date>)")
    p.add_argument("--sections", default="env,bench,notebooks,cuda_tests,kernels,train,static,pytest",
                   help="run in this order, except that notebooks start in the background (their own "
                        "kernel processes) and are collected at the end")
    p.add_argument("--notebooks", default=None,
                   help="comma-separated chapter files to run (default: all on cuda, 15_performance on cpu)")
    p.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget; notebooks stop at it")
    return p.parse_args(argv)


A = parse()
DEVICE = A.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
if DEVICE == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before tucker_lab.kernels is imported
T0 = time.time()
# pinned SDPA backends explain each refusal in a warning; the refusals are recorded as "unsupported"
warnings.filterwarnings("ignore", message=r"(?s).*(kernel not used|requires q,k,v|Memory efficient kernel)")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

import tucker_lab as tkl  # noqa: E402
from tucker_lab import bench  # noqa: E402
from tucker_lab.functional import _flash_func  # noqa: E402
from tucker_lab.notebook import max_err as err  # noqa: E402

TINY = A.tiny
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
OUT = Path(A.out or ROOT / "results" / "gpu" / (
    f"{DEVICE}-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M")))
OUT.mkdir(parents=True, exist_ok=True)


def write(name: str, doc) -> None:
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1, default=str))


def configs(size: str) -> dict:
    """The variants and options checked: standard configs plus the options that change
    the algebra (query compression, coupled RoPE, constant TPA heads, shared Tucker KV)."""
    C, H = {"tiny": (32, 4), "small": (512, 8)}[size]
    D = C // H
    cfgs = tkl.standard_configs(C, H)
    cfgs.update({
        "MLA-q": tkl.MLAConfig(d_model=C, n_heads=H, kv_rank=2 * D, q_rank=C // 2, rope_dim=D // 2),
        "MLA-coupled": tkl.MLAConfig(d_model=C, n_heads=H, kv_rank=2 * D, coupled_rope=True),
        "TPA-const-a": tkl.TPAConfig(d_model=C, n_heads=H, q_rank=4, k_rank=2, v_rank=2, contextual_a=False),
        "Tucker-shared": tkl.TuckerConfig(d_model=C, n_heads=H, ranks_qk=(4, D, D), ranks_vo=(4, D, D),
                                          shared_kv=True),
    })
    return cfgs


def modes(cfg):
    if getattr(cfg, "coupled_rope", False):
        return ["absorbed"]
    return [m for m in cfg.modes if m != "default"] or [None]


def layer_of(cfg, mode, impl, dtype, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return tkl.build_attention(cfg, mode=mode, impl=impl).to(DEVICE, dtype).eval()



def pinned(backend: str):
    return sdpa_kernel({"flash": [SDPBackend.FLASH_ATTENTION],
                        "efficient": [SDPBackend.EFFICIENT_ATTENTION]}[backend])


def unsupported(e: Exception) -> bool:
    """SDPA's answer when no pinned backend takes the shapes/dtype (recorded, not failed)."""
    msg = str(e)
    return isinstance(e, RuntimeError) and any(
        s in msg for s in ("No available kernel", "No viable backend", "flash-attn needs"))


# ---------------------------------------------------------------- sections
def sec_env():
    prov = bench.provenance(DEVICE)
    import transformers
    doc = {**prov, "transformers": transformers.__version__, "numpy": __import__("numpy").__version__,
           "python": sys.version.split()[0], "tiny": TINY,
           "copy_bandwidth_GBps": bench.copy_bandwidth(DEVICE, 2**24 if TINY else 2**30) / 1e9,
           "matmul_TFLOPs_bf16": bench.matmul_flops(DEVICE, torch.bfloat16, 256 if TINY else 8192,
                                                    0.05 if TINY else 0.5) / 1e12}
    if DEVICE == "cuda":
        p = torch.cuda.get_device_properties(0)
        doc |= {"capability": list(torch.cuda.get_device_capability()), "memory_GiB": p.total_memory / 2**30,
                "sms": p.multi_processor_count}
    return doc, True


def sec_cuda_tests():
    rows, ok = [], True
    B, T = (2, 8) if TINY else (2, 64)
    impls = [("sdpa", "flash"), ("sdpa", "efficient")]
    if _flash_func() is not None and DEVICE == "cuda":
        impls.append(("flash", None))
    for name, cfg in configs("tiny" if TINY else "small").items():
        for mode in modes(cfg):
            exact_layer = layer_of(cfg, mode, "einsum", torch.float64)
            x64 = torch.randn(B, T, cfg.d_model, dtype=torch.float64, device=DEVICE)
            with torch.no_grad():
                exact = exact_layer(x64)
            for dname, dt in DTYPES.items():
                x = x64.to(dt)
                with torch.no_grad():
                    ref = layer_of(cfg, mode, "einsum", dt)(x)
                ref_err, tol = err(ref, exact), tkl.reference.tolerance(exact, ref)
                for impl, backend in impls:
                    row = {"variant": name, "mode": mode, "dtype": dname, "impl": impl, "backend": backend,
                           "ref_err": ref_err, "tolerance": tol}
                    try:
                        with (pinned(backend) if backend else contextlib.nullcontext()), torch.no_grad():
                            e = err(layer_of(cfg, mode, impl, dt)(x), exact)
                        row |= {"err": e, "status": "ok" if e <= tol else "FAIL"}
                    except Exception as ex:  # noqa: BLE001
                        row |= {"status": "unsupported" if unsupported(ex) else "ERROR",
                                "error": f"{type(ex).__name__}: {str(ex)[:300]}"}
                    ok &= row["status"] in ("ok", "unsupported")
                    rows.append(row)
            # cached decoding == the full forward, fp32 on the device (Triton on the steps when it applies)
            for impl in ("sdpa", "triton"):
                layer = layer_of(cfg, mode, impl, torch.float32)
                x = x64.float()
                cache = layer.new_cache(B, T)
                split = [T // 2] + [1] * (T - T // 2)
                with torch.no_grad():
                    outs, t = [], 0
                    for n in split:
                        outs.append(layer(x[:, t:t + n], cache=cache, start_pos=t))
                        t += n
                    e = err(torch.cat(outs, 1), layer(x))
                scale = exact.abs().max().item()
                good = e <= 1e-4 * max(1.0, scale)
                ok &= good
                rows.append({"variant": name, "mode": mode, "check": "cached_decode==full", "impl": impl,
                             "dtype": "fp32", "err": e, "status": "ok" if good else "FAIL"})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "unsupported", "FAIL", "ERROR")}
    return {"rule": "reference.tolerance: err vs float64 <= 2 x err of the einsum reference in the same dtype "
                    "+ the rounding of the float64 values to that dtype",
            "counts": counts, "results": rows}, ok


def sec_kernels():
    from tucker_lab.attention.tpa import factored_attention
    from tucker_lab.kernels import available, latent_mqa_decode, tpa_decode
    if not available():
        return {"status": "triton not available"}, False
    dts = {"fp32": torch.float32, "fp16": torch.float16}
    if DEVICE == "cuda":
        dts["bf16"] = torch.bfloat16  # the interpreter mishandles bf16
    shapes = [(2, 4, 6, 5, 37), (1, 4, 576, 512, 40)] if TINY else [
        (2, 4, 6, 5, 37), (1, 12, 64, 64, 300), (4, 32, 64, 64, 4096), (2, 16, 576, 512, 2048),
        (8, 128, 576, 512, 1024), (2, 70, 32, 16, 129)]
    rows, ok = [], True
    g = torch.Generator().manual_seed(0)
    for (B, H, E, Fd, S) in shapes:
        q, k, v = (torch.randn(*s, generator=g) for s in ((B, H, E), (B, S, E), (B, S, Fd)))
        def plain(q, k, v):  # the einsum reference: one step's H queries against one K/V stream
            return tkl.attend(q[:, None], k[:, :, None], v[:, :, None], scale=E ** -0.5, causal=False,
                              impl="einsum")[:, 0].cpu()
        exact = plain(q.double(), k.double(), v.double())
        for dn, dt in dts.items():
            d = lambda t: t.to(DEVICE, dt)  # noqa: E731
            out = latent_mqa_decode(d(q), d(k), d(v), scale=E ** -0.5)
            e, tol = err(out.cpu(), exact), tkl.reference.tolerance(exact, plain(d(q), d(k), d(v)))
            rows.append({"kernel": "latent_mqa_decode", "shape": [B, H, E, Fd, S], "dtype": dn, "err": e,
                         "tol": tol, "status": "ok" if e <= tol else "FAIL"})
    for RQ, RK, RV, ctx in [(3, 2, 2, True), (6, 2, 2, False), (1, 1, 1, True)]:
        B, S, H, D = (2, 45, 5, 6) if TINY else (4, 2048, 32, 128)
        r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
        a = lambda R: r(B, S, R, H) if ctx else r(R, H)  # noqa: E731
        a_k, a_v, b_k, b_v = a(RK), a(RV), r(B, S, RK, D), r(B, S, RV, D)
        a_q = r(B, 1, RQ, H) if ctx else r(RQ, H)
        b_q = r(B, 1, RQ, D)
        exact = factored_attention((a_q.double(), b_q.double()), a_k.double(), b_k.double(), a_v.double(),
                                   b_v.double(), scale=D ** -0.5, causal=False)[:, 0]
        for dn, dt in dts.items():
            d = lambda t: t.to(DEVICE, dt)  # noqa: E731
            out = tpa_decode((d(a_q[:, 0]) if ctx else d(a_q), d(b_q[:, 0])), d(a_k), d(b_k), d(a_v), d(b_v),
                             scale=D ** -0.5)
            low = factored_attention((d(a_q), d(b_q)), d(a_k), d(b_k), d(a_v), d(b_v), scale=D ** -0.5,
                                     causal=False)[:, 0]
            e, tol = err(out.cpu(), exact), tkl.reference.tolerance(exact, low.cpu())
            rows.append({"kernel": "tpa_decode", "ranks": [RQ, RK, RV], "contextual_a": ctx, "dtype": dn,
                         "err": e, "tol": tol, "status": "ok" if e <= tol else "FAIL"})
    ok = all(r["status"] == "ok" for r in rows)
    return {"compiled": DEVICE == "cuda", "results": rows}, ok


def sec_train():
    rows, ok = [], True
    C, H, V, T = (32, 4, 64, 16) if TINY else (256, 8, 512, 128)
    for name, cfg in tkl.standard_configs(C, H).items():
        torch.manual_seed(0)
        model = tkl.TinyLM(tkl.LMConfig(vocab_size=V, n_layers=2, attention=cfg, max_seq_len=T)).to(DEVICE)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        idx = torch.randint(0, V, (4, T + 1), device=DEVICE)
        before = [p.detach().clone() for p in model.parameters()]
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            logits = model(idx[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), idx[:, 1:].flatten())
        loss.backward()
        finite = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())
        opt.step()
        moved = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
        good = math.isfinite(loss.item()) and finite and moved == len(before) and logits.dtype == torch.bfloat16
        ok &= good
        rows.append({"variant": name, "loss": loss.item(), "logits_dtype": str(logits.dtype),
                     "grads_finite": finite, "params_updated": moved, "params": len(before),
                     "status": "ok" if good else "FAIL"})
    return {"results": rows}, ok


def sec_static():
    from torch._dynamo.utils import counters
    rows, ok = [], True
    B, S_max, prefill, steps = (1, 24, 8, 6) if TINY else (1, 4096, 1024, 32)
    backend = "inductor" if DEVICE == "cuda" else "eager"
    cfgs = configs("tiny" if TINY else "small")
    if DEVICE == "cuda":  # inductor compiles take a while: the six standard variants
        cfgs = {k: v for k, v in cfgs.items() if k in tkl.standard_configs(512, 8)}
    for name, cfg in cfgs.items():
        torch._dynamo.reset()
        row = {"variant": name, "backend": backend, "mode": "reduce-overhead" if DEVICE == "cuda" else None}
        if time.time() - T0 > A.budget_s - 30:
            rows.append(row | {"status": "skipped: time budget"})
            continue
        try:
            layer = layer_of(cfg, None, "sdpa", torch.bfloat16 if DEVICE == "cuda" else torch.float32)
            dt = next(layer.parameters()).dtype
            x = torch.randn(B, prefill + steps, cfg.d_model, device=DEVICE, dtype=dt)
            ce, cs = layer.new_cache(B, S_max), layer.new_cache(B, S_max)
            with torch.no_grad():
                layer(x[:, :prefill], cache=ce), layer(x[:, :prefill], cache=cs)
                dec = tkl.StaticDecoder(layer, cs, backend=backend)
                graphs0 = counters["stats"]["unique_graphs"]
                t0 = time.perf_counter()
                dec(x[:, prefill:prefill + 1])
                row["first_step_s"] = time.perf_counter() - t0  # compile
                eager = [layer(x[:, prefill:prefill + 1], cache=ce)]
                outs = []
                for t in range(prefill + 1, prefill + steps):
                    eager.append(layer(x[:, t:t + 1], cache=ce))
                    outs.append(dec(x[:, t:t + 1]))
                row["graphs"] = counters["stats"]["unique_graphs"] - graphs0
                e = err(torch.cat(outs, 1), torch.cat(eager[1:], 1))
                row["err_vs_eager"] = e
                tol = 2e-2 if dt == torch.bfloat16 else 1e-4
                # step times at the last position: eager (new shapes each step) vs the static graph
                sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
                n = 5 if TINY else 50

                def timed(fn):
                    sync()
                    t0 = time.perf_counter()
                    for _ in range(n):
                        fn()
                    sync()
                    return (time.perf_counter() - t0) / n * 1e3
                S = ce.seq_len
                xt = x[:, -1:]
                row["eager_step_ms"] = timed(lambda: (ce.truncate(S - 1), layer(xt, cache=ce)))
                row["static_step_ms"] = timed(lambda: (cs.truncate(S - 1), dec(xt)))
                row["S_max"], row["position"] = S_max, S - 1
            good = row["graphs"] == 1 and e <= tol
            row["status"] = "ok" if good else "FAIL"
        except Exception:  # noqa: BLE001
            row |= {"status": "ERROR", "error": traceback.format_exc()[-1500:]}
            good = False
        ok &= good
        rows.append(row)
    return {"results": rows}, ok


def sec_bench():
    dt = torch.float32 if DEVICE == "cpu" else torch.bfloat16
    C, H = (64, 8) if TINY else (4096, 32)
    std = tkl.standard_configs(C, H)
    gqa = f"GQA-{H // 4}"
    peak = bench.copy_bandwidth(DEVICE, 2**24 if TINY else 2**30)
    flops = bench.matmul_flops(DEVICE, dt, 256 if TINY else 8192, 0.05 if TINY else 0.5)
    tri = "triton"  # (interpreted on CPU: tiny sizes only)
    dec_specs = [(gqa, std[gqa], "sdpa", "flash"), ("MLA", std["MLA"], tri, None),
                 ("MLA-sdpa", std["MLA"], "sdpa", None), ("TPA", std["TPA"], tri, None),
                 ("Tucker", std["Tucker"], tri, None)]
    contexts = [16, 64] if TINY else [1024, 4096, 16384, 65536]
    batches = [1, 2] if TINY else [1, 8, 64]
    mrt = 0.001 if TINY else 0.05
    rows = []
    limit = 2**24 if TINY else 40 * 2**30  # bytes of cache per shape
    for name, cfg, impl, backend in dec_specs:
        for B in batches:
            for S in contexts:
                if B * S * cfg.kv_cache_bytes_per_token(dt) > limit:
                    continue
                if DEVICE == "cpu" and backend == "flash":
                    backend = None  # no pinned CUDA backend on CPU
                with (pinned(backend) if backend else contextlib.nullcontext()):
                    r = bench.bench_decode({name.split("-sdpa")[0]: cfg}, contexts=[S], batches=[B], dtype=dt,
                                           device=DEVICE, impls=[impl], min_run_time=mrt, peak=peak)
                for x in r:
                    x |= {"variant": name, "backend": backend,
                          "flops_floor_ms": B * (cfg.flops_per_token(S, cfg.modes[-1] if cfg.modes[0] != "default"
                                                                      else None)) / flops * 1e3}
                rows.extend(r)
    write("decode", {"kind": "decode", "dtype": str(dt), "copy_bandwidth_GBps": peak / 1e9,
                     "matmul_TFLOPs": flops / 1e12, **bench.provenance(DEVICE), "results": rows})
    # prefill: MQA at Tucker's head dim r_k for the "Tucker within 1.1x of MQA" target
    rk = std["Tucker"].r_k
    pre = {gqa: (std[gqa], "flash"), f"MQA-d{rk}": (tkl.GQAConfig(d_model=C, n_heads=H, n_kv_heads=1, d_head=rk),
                                                    "flash"),
           "Tucker": (std["Tucker"], "flash"), "MLA": (std["MLA"], None), "TPA": (std["TPA"], None)}
    prows = []
    for name, (cfg, backend) in pre.items():
        backend = backend if DEVICE == "cuda" else None
        with (pinned(backend) if backend else contextlib.nullcontext()):
            r = bench.bench_prefill({name: cfg}, lengths=[16, 32] if TINY else [1024, 4096, 16384],
                                    batches=[1] if TINY else [1, 8], dtype=dt, device=DEVICE, impls=["sdpa"],
                                    min_run_time=mrt)
        for x in r:
            x["backend"] = backend
        prows.extend(r)
    write("prefill", {"kind": "prefill", "dtype": str(dt), **bench.provenance(DEVICE), "results": prows})
    return {"targets": targets(rows, prows, gqa, rk, 4 if TINY else 16384)}, True


def targets(rows, prows, gqa, rk, long_ctx):
    """The issue's GPU targets, computed from the measurements (reported, not asserted)."""
    core = {(r["variant"], r["batch"], r["context"]): r for r in rows if r["scope"] == "core"}
    out = {"latent_decode_fraction_of_copy_bw_at_long_context": {}, "speedup_vs_gqa_over_bytes_ratio": {},
           "tucker_prefill_over_mqa": {}}
    for (v, B, S), r in core.items():
        if v in ("Tucker", "MLA") and S >= long_ctx:
            out["latent_decode_fraction_of_copy_bw_at_long_context"][f"{v} B{B} S{S}"] = r["fraction_of_copy_bw"]
        g = core.get((gqa, B, S))
        if v in ("Tucker", "MLA") and g and S >= long_ctx:
            speed = g["median_ms"] / r["median_ms"]
            ratio = g["cache_bytes"] / r["cache_bytes"]
            out["speedup_vs_gqa_over_bytes_ratio"][f"{v} B{B} S{S}"] = speed / ratio
    pm = {(r["variant"], r["batch"], r["length"]): r["median_ms"] for r in prows}
    for (v, B, T), ms in pm.items():
        if v == "Tucker" and (f"MQA-d{rk}", B, T) in pm:
            out["tucker_prefill_over_mqa"][f"B{B} T{T}"] = ms / pm[(f"MQA-d{rk}", B, T)]
    out["goals"] = {"latent_decode_fraction_of_copy_bw_at_long_context": ">= 0.8",
                    "speedup_vs_gqa_over_bytes_ratio": ">= 0.8", "tucker_prefill_over_mqa": "<= 1.1"}
    return out


def sec_pytest():
    if DEVICE != "cuda":
        return {"status": "skipped: the CPU test suite runs these modules already"}, True
    t0 = time.time()
    left = A.budget_s - (time.time() - T0)
    if left < 60:
        return {"status": "skipped: time budget"}, True
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "tests/test_kernels.py",
                        "tests/test_functional.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=max(30, left - 20))
    return {"returncode": p.returncode, "seconds": time.time() - t0, "tail": p.stdout[-3000:]}, p.returncode == 0


_NB = ("import sys, nbformat\nfrom nbclient import NotebookClient\n"
       "nb = nbformat.read(sys.argv[1], as_version=4)\n"
       "NotebookClient(nb, timeout=int(sys.argv[2]), kernel_name='python3',\n"
       "               resources={'metadata': {'path': sys.argv[3]}}).execute()\n")


def _run_notebook(path: Path, timeout: float) -> dict:
    """Execute one chapter in its own process (and kernel), killed at ``timeout`` seconds."""
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-c", _NB, str(path), str(int(max(10, timeout))), str(path.parent)],
                           capture_output=True, text=True, timeout=max(10, timeout))
        status = "ok" if p.returncode == 0 else "FAIL"
        error = None if p.returncode == 0 else p.stderr[-2000:]
    except subprocess.TimeoutExpired:
        status, error = "FAIL", f"not finished within the time budget ({timeout:.0f} s)"
    return {"notebook": path.name, "status": status, "seconds": round(time.time() - t0, 1), "error": error}


def sec_notebooks():
    book = ROOT / "book"
    if A.notebooks:
        paths = [book / n if n.endswith(".ipynb") else book / f"{n}.ipynb" for n in A.notebooks.split(",")]
    elif DEVICE == "cpu":
        paths = [book / "15_performance.ipynb"]
    else:
        paths = sorted(book.glob("[0-9][0-9]_*.ipynb"))
    left = A.budget_s - (time.time() - T0)
    env_ok = "GPU chapters see torch.cuda.is_available() = " + str(torch.cuda.is_available())
    rows = []

    def one(p):
        rows.append(_run_notebook(p, left))
        write("notebooks", {"device_seen": env_ok, "results": rows, "partial": len(rows) < len(paths)})
    with ThreadPoolExecutor(max_workers=4 if DEVICE == "cuda" else 1) as pool:
        list(pool.map(one, paths))
    rows.sort(key=lambda r: r["notebook"])
    return {"device_seen": env_ok, "results": rows}, all(r["status"] == "ok" for r in rows)


SECTIONS = {"env": sec_env, "cuda_tests": sec_cuda_tests, "kernels": sec_kernels, "train": sec_train,
            "static": sec_static, "bench": sec_bench, "pytest": sec_pytest, "notebooks": sec_notebooks}


def _run(name: str, summary: dict) -> None:
    t0 = time.time()
    try:
        doc, ok = SECTIONS[name]()
    except Exception:  # noqa: BLE001
        doc, ok = {"error": traceback.format_exc()[-3000:]}, False
    if name != "bench" or "targets" not in doc:
        write(name, doc)
    else:
        write("targets", doc["targets"])
    summary["sections"][name] = {"ok": ok, "seconds": round(time.time() - t0, 1)}
    print(f"[{time.time() - T0:6.1f} s] {name:10s} {'ok' if ok else 'FAILED'}", flush=True)
    write("summary", summary | {"total_seconds": round(time.time() - T0, 1)})


def main() -> int:
    summary = {"device": DEVICE, "tiny": TINY, "out": str(OUT), "sections": {}}
    background = None
    for name in A.sections.split(","):
        if name == "notebooks":  # separate kernel processes: run alongside the checks that follow
            background = ThreadPoolExecutor(max_workers=1)
            pending = background.submit(_run, name, summary)
            continue
        _run(name, summary)
    if background is not None:
        pending.result()
        background.shutdown()
    ok = all(s["ok"] for s in summary["sections"].values())
    print(f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}; JSON in {OUT}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
