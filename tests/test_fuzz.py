"""Fuzzing the public API with malformed inputs.

For every config class and every public function and method a reader calls (the names in
``tkl.__all__``, the data tasks, the layers' forward and new_cache, TinyLM/TinyViT), each
argument in turn gets generated malformed values (wrong types, bools for ints, floats,
zero, negative, too large, mismatched dtypes and devices, empty sequences) while the
others stay valid. Every call must raise ValueError or TypeError - never AttributeError,
IndexError, KeyError, AssertionError or an error from deep inside torch - and the
message must name the argument (or the config field). Nothing may be accepted silently.
"""
import math

import torch
from torch import nn

import tucker_lab as tkl
from tucker_lab import data
from cases import CASES

NAN, INF = math.nan, math.inf
META = "meta"  # a device that differs from the CPU without needing a GPU


def bad_ints(lo=1, hi=None, optional=False):
    """Malformed values for an integer argument in [lo, hi] (None allowed if optional)."""
    vals = ["3", 3.5, True, [3], lo - 1, lo - 7, NAN]
    if lo == 1:
        vals.append(False)  # False == 0 would pass a lo=0 bound only as a bool
    if not optional:
        vals.append(None)
    if hi is not None:
        vals.append(hi + 1)
    return vals


BAD_BOOLS = [1, 0, "yes", None, 1.0]
BAD_POSITIVE = ["1.0", 0, -1.0, NAN, INF, True, None, [1.0]]


class Fuzz:
    """Collects (label, expected name, thunk) cases."""

    def __init__(self):
        self.cases = []

    def add(self, label, name, fn):
        self.cases.append((label, name, fn))

    def kwargs(self, label, fn, base: dict, bad: dict, names: dict | None = None):
        """fn(**{**base, field: v}) for every malformed v of every field."""
        for field, values in bad.items():
            for v in values:
                self.add(f"{label}({field}={v!r})", (names or {}).get(field, field),
                         lambda field=field, v=v: fn(**{**base, field: v}))


def config_cases(fz: Fuzz):
    C24 = dict(d_model=24, n_heads=4)
    common = {"d_model": bad_ints(1), "n_heads": bad_ints(1) + [5, 25],
              "d_head": bad_ints(1, optional=True) + [3], "causal": BAD_BOOLS, "rope": BAD_BOOLS,
              "rope_base": ["1e4", None, 1, 0.5, -3.0, NAN, INF, True], "scale": ["0.1", 0, -1.0, NAN, INF, True]}
    fz.kwargs("MHAConfig", tkl.MHAConfig, C24, common)
    fz.kwargs("GQAConfig", tkl.GQAConfig, {**C24, "n_kv_heads": 2}, {"n_kv_heads": bad_ints(1, hi=4) + [3]})
    fz.kwargs("MLAConfig", tkl.MLAConfig, dict(d_model=32, n_heads=4, kv_rank=12), {
        **{k: v for k, v in common.items() if k not in ("n_heads", "d_head")},
        "kv_rank": bad_ints(1, hi=32) + [29], "q_rank": bad_ints(1, hi=32, optional=True),
        "rope_dim": ["2", 2.0, True, -2, 0, 3, 22], "v_head_dim": bad_ints(1, optional=True),
        "coupled_rope": BAD_BOOLS, "latent_norm": BAD_BOOLS})
    fz.kwargs("MLAConfig(coupled)", tkl.MLAConfig, dict(d_model=32, n_heads=4, kv_rank=12, coupled_rope=True),
              {"rope_dim": [2, 4], "kv_rank": [11]})
    fz.kwargs("MLAConfig(rope=False)", tkl.MLAConfig, dict(d_model=32, n_heads=4, kv_rank=12, rope=False),
              {"rope_dim": [2], "coupled_rope": [True]})
    fz.kwargs("TPAConfig", tkl.TPAConfig, dict(**C24, q_rank=3, k_rank=2, v_rank=2), {
        "q_rank": bad_ints(1, hi=24, optional=True), "k_rank": bad_ints(1, hi=24),
        "v_rank": bad_ints(1, hi=24), "contextual_a": BAD_BOOLS, "d_head": [5]})
    bad_ranks = [None, 3, "2,8,6", (2, 8), (2, 8, 6, 1), (0, 8, 6), (5, 8, 6), (2, 25, 6), (2, 8, -6),
                 (2, 8.0, 6), (True, 8, 6), [], (2, 8, 25)]
    tk = dict(**C24, ranks_qk=(2, 8, 6), ranks_vo=(3, 5, 4))
    fz.kwargs("TuckerConfig", tkl.TuckerConfig, tk, {
        "ranks_qk": bad_ranks + [(2, 8, 7)], "ranks_vo": bad_ranks, "shared_kv": BAD_BOOLS,
        "rope_layout": ["diagonal", 3, None, "LATENT"], "rope_dim": [2, "2", True, 0, -2]})
    fz.kwargs("TuckerConfig(block)", tkl.TuckerConfig, {**tk, "rope_layout": "block", "rope_dim": 2},
              {"rope_dim": [None, 3, 4, 0, 8, 2.0, True]})
    fz.kwargs("TuckerConfig(rope=False)", tkl.TuckerConfig, {**tk, "rope": False},
              {"rope_layout": ["block", "tail"], "rope_dim": [2]})
    lm = dict(vocab_size=11, n_layers=1, attention=CASES["tucker"], max_seq_len=16)
    fz.kwargs("LMConfig", tkl.LMConfig, lm, {
        "vocab_size": bad_ints(1), "n_layers": bad_ints(1), "max_seq_len": bad_ints(1),
        "mlp_hidden": bad_ints(1, optional=True), "attention": [None, {"d_model": 8}, "mha", CASES["mha-bidir"]],
        "norm_eps": ["1e-6", 0, -1e-6, NAN, True, None], "tie_embeddings": BAD_BOOLS})
    vit = dict(attention=CASES["mha-bidir"])
    fz.kwargs("ViTConfig", tkl.ViTConfig, vit, {
        "n_layers": bad_ints(1), "image_size": bad_ints(1) + [7], "patch_size": bad_ints(1) + [3],
        "channels": bad_ints(1), "n_classes": bad_ints(1), "mlp_hidden": bad_ints(1, optional=True),
        "attention": [None, CASES["mha"], "mha"], "norm_eps": [0, NAN, "x"]})
    devices = ["tpu", "cuda:99", 3, None, "gpu", ""] + ([] if torch.cuda.is_available() else ["cuda"])
    fz.kwargs("TrainConfig", tkl.TrainConfig, dict(steps=10, warmup_steps=2), {
        "steps": bad_ints(1), "batch_size": bad_ints(1), "eval_every": bad_ints(1), "eval_batches": bad_ints(1),
        "warmup_steps": bad_ints(0, hi=10), "lr": BAD_POSITIVE, "min_lr": ["0", -1.0, NAN, 1.0, True],
        "weight_decay": ["0.1", -0.1, NAN, None], "betas": [(0.9,), (0.9, 1.0), "0.9,0.95", None, (0.9, -0.1)],
        "grad_clip": ["1", 0, -1.0, NAN], "eval_batch_size": bad_ints(1, optional=True), "seed": bad_ints(0),
        "device": devices, "precision": ["fp8", None, 16], "compile": BAD_BOOLS, "resume": BAD_BOOLS,
        "progress": BAD_BOOLS, "ckpt_dir": [3, ["a"]], "ckpt_every": bad_ints(1, optional=True)})
    fz.kwargs("AssociativeRecall", data.AssociativeRecall, {}, {
        "n_keys": bad_ints(1), "n_values": bad_ints(1), "n_pairs": bad_ints(1, hi=24), "n_queries": bad_ints(1),
        "layout": ["interleaved", None, 1], "seed": bad_ints(0)})
    text = "abcdefgh " * 40
    fz.kwargs("CharCorpus", data.CharCorpus, dict(text=text, block_size=8), {
        "text": [None, 3, b"abc", "ab"], "block_size": bad_ints(1) + [len(text)], "val_fraction": [0, 1, -0.1, "0.1", NAN]})
    fz.kwargs("text_corpus", data.text_corpus, dict(text=text, block_size=8), {"text": [None, 3, ["a"]]})


def function_cases(fz: Fuzz):
    mha = tkl.build_attention(CASES["mha"])
    lin = nn.Linear(4, 4)
    not_layers = [lin, None, {"w": 1}, CASES["mha"]]
    for fn in (tkl.attention_tensors, tkl.to_tucker, tkl.to_tpa, tkl.compress_model, tkl.rank_profile):
        for v in not_layers:
            fz.add(f"{fn.__name__}({type(v).__name__})", ("layer", "model"),
                   lambda fn=fn, v=v: fn(v) if fn not in (tkl.compress_model,) else fn(v, (1, 1, 1), (1, 1, 1)))
    fz.kwargs("build_attention", tkl.build_attention, dict(cfg=CASES["mla"]), {
        "cfg": [None, {"d_model": 8}, "mha", tkl.LMConfig(vocab_size=4, n_layers=1, attention=CASES["mha"])],
        "impl": ["cuda-magic", None, 3], "mode": ["fast", 3, ["naive"]]}, names={"cfg": ("cfg", "make_config")})
    fz.kwargs("make_config", lambda **kw: tkl.make_config(kw.pop("variant"), **kw), dict(variant="gqa", d_model=8, n_heads=2),
              {"variant": ["linformer", None, 3], "n_kv_heads": [3, 0], "colour": ["red"]},
              names={"colour": "colour", "n_kv_heads": "n_kv_heads"})
    fz.kwargs("standard_configs", tkl.standard_configs, dict(d_model=64, n_heads=4), {
        "d_model": bad_ints(4) + [66], "n_heads": bad_ints(1, hi=32) + [3]})
    W = dict(ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 8))
    layer = tkl.build_attention(CASES["mha-norope"])
    fz.kwargs("compress", tkl.compress, dict(layer=layer, **W), {
        "layer": not_layers, "ranks_qk": [None, (2, 8), (2, 8, 8, 8), (0, 8, 8), (5, 8, 8), (2, 25, 8), (2, 8.0, 8),
                                           "2,8,8", (True, 8, 8)],
        "ranks_vo": [None, (2, 8), (2, 8, -1), (2, 8, 25)], "method": ["cp", None, 3]})
    fz.kwargs("compress(rope)", tkl.compress, dict(layer=tkl.build_attention(CASES["gqa"]), ranks_qk=(2, 8, 8),
                                                   ranks_vo=(2, 8, 8)), {"ranks_qk": [(2, 8, 6), (2, 8)]})
    fz.kwargs("rank_profile", tkl.rank_profile, dict(layer_or_model=layer),
              {"energies": [None, (), (0.9, 1.5), (0.0,), "0.9", (True,)]})
    fz.kwargs("to_gqa", tkl.to_gqa, dict(layer=mha, n_kv_heads=2), {
        "layer": not_layers + [tkl.build_attention(CASES["mla"])], "n_kv_heads": bad_ints(1, hi=4) + [3],
        "method": ["median", None]})
    fz.kwargs("to_mla", tkl.to_mla, dict(layer=layer, kv_rank=4), {
        "layer": not_layers + [tkl.build_attention(CASES["tpa"])], "kv_rank": bad_ints(1, hi=24)},
        names={"layer": ("layer", "RoPE")})
    fz.add("to_mla(rope, odd kv_rank)", "kv_rank", lambda: tkl.to_mla(mha, 3))  # coupled RoPE rotates pairs
    fz.kwargs("from_hf", tkl.from_hf, dict(module=lin), {"module": [lin, None, mha]})
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 5, 2, 8), torch.randn(2, 5, 2, 6)
    fz.kwargs("attend", tkl.attend, dict(q=q, k=k, v=v, scale=0.3, causal=True), {
        "q": [None, q[0], q.double(), q.to(META), q.long(), torch.randn(2, 0, 4, 8)],
        "k": [None, k[0], k.double(), k.to(META), torch.randn(2, 0, 2, 8)],
        "v": [[1.0], v.double(), v.to(META), v.int()],
        "scale": [0, -1.0, "0.3", None, NAN, True], "causal": [1, None, "yes"], "impl": ["cuda-magic", None]},
        names={"k": ("k", "q"), "v": ("v", "q")})
    x = torch.randn(1, 5, 8)
    fz.kwargs("apply_rope", tkl.apply_rope, dict(x=x, pos=0), {
        "x": [None, [1.0], torch.randn(5, 8), torch.randn(1, 5, 7), x.long()],
        "pos": [None, "0", 1.5, True, torch.arange(4), torch.arange(5).to(META), torch.zeros(5, dtype=torch.complex64)],
        "base": [0, -1.0, "1e4", None, True], "layout": ["diagonal", None, 3]}, names={"x": ("x", "dims")})
    fz.kwargs("apply_rope(block)", tkl.apply_rope, dict(x=x, pos=0, layout="block"),
              {"rope_dim": [None, 3, 0, 16, 6, True]})
    fz.kwargs("apply_rope(tail)", tkl.apply_rope, dict(x=x, pos=0, layout="tail"), {"rope_dim": [None, 3, 0, 10]})
    fz.kwargs("FactorCache", tkl.FactorCache, dict(shapes={"k": (2, 3)}, batch_size=2, max_seq_len=5), {
        "shapes": [None, {}, {"k": (0, 3)}, {"k": (-1,)}, {"k": (2.0,)}, {"k": ()}, [("k", (2,))], {3: (2,)}],
        "batch_size": bad_ints(1), "max_seq_len": bad_ints(1),
        "dtype": [torch.int64, "float32", None, torch.bool], "device": [3, ["cpu"]]})


def tensor_cases(fz: Fuzz):
    """tkl.tensor: the mode products, unfoldings and decompositions chapter 4 teaches."""
    T = tkl.tensor
    t = torch.randn(3, 4, 5, dtype=torch.float64)
    bad_t = [None, t.tolist(), torch.tensor(2.0)]
    fz.kwargs("unfold", T.unfold, dict(t=t, mode=0), {"t": bad_t, "mode": bad_ints(0, hi=2)})
    fz.kwargs("fold", T.fold, dict(m=T.unfold(t, 1), mode=1, shape=(3, 4, 5)), {
        "m": [None, t, T.unfold(t, 0)], "mode": bad_ints(0, hi=2), "shape": [None, (3, 4), (3, 4, 0), "345", (3, 4.0, 5)]},
        names={"m": ("m",), "mode": ("mode", "m ")})
    fz.kwargs("mode_product", T.mode_product, dict(t=t, m=torch.randn(2, 4, dtype=torch.float64), mode=1), {
        "t": bad_t, "m": [None, torch.randn(2, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64),
                          torch.randn(2, 4, dtype=torch.float64, device=META)], "mode": bad_ints(0, hi=2)},
        names={"mode": ("mode", "m must")})
    core = torch.randn(2, 2, 2, dtype=torch.float64)
    U = [torch.randn(3, 2, dtype=torch.float64) for _ in range(3)]
    fz.kwargs("tucker_to_tensor", T.tucker_to_tensor, dict(core=core, factors=U), {
        "core": [None, [1.0]], "factors": [None, U[:2], U[:2] + [torch.randn(3, 3, dtype=torch.float64)],
                                            U[:2] + [None], "U"]})
    for fn in (T.hosvd, T.hooi):
        fz.kwargs(fn.__name__, fn, dict(t=t, ranks=(2, 2, 2)), {
            "t": bad_t + [t.long()], "ranks": [None, (2, 2), (0, 2, 2), (4, 2, 2), (2.0, 2, 2), "222", (True, 2, 2)],
            "modes": [(0, 0), (3,), "0", (0.0,)]}, names={"ranks": ("ranks", "rank")})
    fz.kwargs("multilinear_rank", T.multilinear_rank, dict(t=t), {"t": bad_t + [t.long()], "rtol": [-1.0, 2.0, "0"]})
    fz.kwargs("energy_rank", T.energy_rank, dict(s=torch.rand(4), energy=0.9), {
        "s": [None, torch.rand(2, 2), torch.rand(0)], "energy": [0, 1.5, -0.1, "0.9", None, NAN, True]})
    fz.kwargs("multilinear_singular_values", T.multilinear_singular_values, dict(t=t), {"t": bad_t + [t.long()]})
    fz.kwargs("check_ranks", T.check_ranks, dict(shape=(3, 4), ranks=(2, 2)), {
        "ranks": [None, 2, (2,), (0, 2), (2, 5), (2.0, 2)]}, names={"ranks": ("ranks", "rank")})
    fz.kwargs("relative_error", T.relative_error, dict(t=t, approx=t), {"t": [None], "approx": [None, t[0], t.to(META)]},
              names={"approx": ("approx",)})


def layer_cases(fz: Fuzz, name: str):
    layer = tkl.build_attention(CASES[name])
    C = layer.cfg.d_model
    x = torch.randn(2, 4, C)
    cache = layer.new_cache(2, 6)
    cases = {"x": [None, x.tolist(), x[0], torch.randn(2, 4, C + 1), x.double(), x.half(), x.to(META),
                   torch.randn(2, 0, C), torch.randn(0, 4, C), x.long()],
             "start_pos": [-1, 1.5, "0", True, [0]],
             "cache": [{"k": torch.zeros(2, 4)}, "cache", tkl.build_attention(CASES[name]).new_cache(2, 6),
                       layer.new_cache(1, 6), layer.new_cache(2, 3), layer.new_cache(2, 6, dtype=torch.float64),
                       layer.new_cache(2, 6, device=META), tkl.build_attention(CASES["mqa"]).new_cache(2, 6)]}
    fz.kwargs(f"{name}.forward", lambda x, **kw: layer(x, **kw), dict(x=x), cases,
              names={"cache": ("cache", "batch", "positions", "layer"), "start_pos": "start_pos"})
    fz.kwargs(f"{name}.forward(cache)", lambda x, **kw: layer(x, **kw), dict(x=x, cache=cache),
              {"start_pos": [1, 3, -2]})
    fz.kwargs(f"{name}.new_cache", layer.new_cache, dict(batch_size=2, max_seq_len=4), {
        "batch_size": bad_ints(1), "max_seq_len": bad_ints(1), "dtype": [torch.int64, "float32", 3],
        "device": [3, ["cpu"]]})


def module_cases(fz: Fuzz):
    for name in ("gqa", "mla-q", "tpa", "tucker"):
        layer_cases(fz, name)
    for name in ("mha-bidir", "tucker-norope"):
        bidir = tkl.build_attention(CASES[name])
        fz.add(f"{name}.new_cache", "causal", lambda bidir=bidir: bidir.new_cache(1, 4))
    model = tkl.TinyLM(tkl.LMConfig(vocab_size=11, n_layers=2, attention=CASES["tucker"], max_seq_len=8))
    idx = torch.randint(0, 11, (2, 5))
    own = model.new_caches(2)
    fz.kwargs("TinyLM.forward", lambda idx, **kw: model(idx, **kw), dict(idx=idx), {
        "idx": [None, idx.tolist(), idx.float(), idx[0], idx[:, :0], idx + 11, idx - 11, torch.randint(0, 11, (1, 9)),
                idx.bool()],
        "caches": [own[:1], {"0": own[0]}, [own[0], own[0]], [own[1], own[0]], own[0], [None, None]],
        "start_pos": [-1, "0", 1.5, 4]}, names={"caches": ("cache", "layer"), "idx": ("idx", "max_seq_len"),
                                                "start_pos": ("start_pos", "positions", "cache")})
    fz.kwargs("TinyLM.new_caches", model.new_caches, dict(batch_size=1), {
        "batch_size": bad_ints(1), "max_seq_len": bad_ints(1, hi=8, optional=True)})
    fz.kwargs("generate", tkl.generate, dict(model=model, prompt_ids=idx[0], max_new_tokens=2), {
        "model": [nn.Linear(4, 4), None, tkl.build_attention(CASES["mha"])],
        "prompt_ids": [None, [1, 2], idx[0].float(), idx[None], idx[0, :0], idx[:0], idx[0] + 11, idx[0] - 20,
                       torch.randint(0, 11, (9,))],
        "max_new_tokens": bad_ints(0, hi=3), "temperature": [-1.0, "1", None, NAN, True],
        "top_k": [0, -1, 1.5, "3", True], "use_cache": ["yes", None, 1], "generator": ["seed", 3]},
        names={"prompt_ids": ("prompt_ids", "max_seq_len")})
    vit = tkl.TinyViT(tkl.ViTConfig(attention=CASES["mha-bidir"]))
    img = torch.rand(2, 8, 8)
    fz.add("TinyViT.forward(None)", "images", lambda: vit(None))
    for bad in (img[0], torch.rand(2, 7, 7), torch.rand(2, 3, 8, 8), img[None, None], img.tolist()):
        fz.add("TinyViT.forward(bad images)", "images", lambda bad=bad: vit(bad))
    task = data.AssociativeRecall()
    fz.kwargs("AssociativeRecall.batch", task.batch, dict(split="train", batch_size=2), {
        "split": ["test", None, 0], "batch_size": bad_ints(1), "generator": [3, "g"]})
    t = tkl.TrainConfig(steps=1, warmup_steps=0, progress=False)
    fz.kwargs("train", tkl.train, dict(model=model, task=task, cfg=t), {
        "model": [None, "model", lambda x: x], "task": [None, "recall", object()],
        "cfg": [None, {"steps": 1}], "callback": [3, "print"]})


def pretrained_cases(fz: Fuzz):
    """load_pretrained and perplexity (their checks run before any download or forward),
    StaticDecoder, and the factored tensor functions."""
    fz.kwargs("load_pretrained", tkl.load_pretrained, dict(name_or_path="smollm2-135m"), {
        "name_or_path": [3, None, "no-such-model", ["smollm2-135m"]], "source": ["ftp", 3, None],
        "dtype": [torch.int64, "float32", 3]})
    model = tkl.TinyLM(tkl.LMConfig(vocab_size=11, n_layers=1, attention=CASES["gqa"], max_seq_len=16))
    ids = torch.randint(0, 11, (12,))
    fz.kwargs("perplexity", tkl.perplexity, dict(model=model, token_ids=ids, window=8, progress=False), {
        "model": [None, "model", torch.randn(3)], "token_ids": [None, ids.tolist(), ids.float(), ids[None], ids[:5]],
        "window": bad_ints(2), "stride": [0, -1, 1.5, "2", True, 8]},
        names={"token_ids": ("token_ids", "window")})
    layer = tkl.build_attention(CASES["gqa"])
    fz.kwargs("StaticDecoder", tkl.StaticDecoder, dict(layer=layer, cache=layer.new_cache(1, 4), compile=False), {
        "layer": [None, nn.Linear(2, 2)], "cache": [None, {"k": 1}, tkl.build_attention(CASES["tpa"]).new_cache(1, 4)],
        "compile": ["yes", 1, None]})
    A, B = torch.randn(3, 5, 2), torch.randn(3, 4, 2)
    fz.kwargs("tensor.factored_singular_values", tkl.tensor.factored_singular_values, dict(A=A, B=B), {
        "A": [None, A.tolist(), A[0], A.long(), torch.randn(2, 5, 2)],
        "B": [None, B[0], torch.randn(3, 4, 3), B.to(META)]})
    fz.kwargs("tensor.factored_tucker", tkl.tensor.factored_tucker, dict(A=A, B=B, ranks=(2, 3, 3)), {
        "A": [None, A[0]], "B": [None, torch.randn(3, 4, 3)], "ranks": [(2, 3), (0, 3, 3), (4, 3, 3), (2, 3, 9), "233"],
        "method": ["svd", None], "modes": [(3,), (), "01", (True,)], "n_iter_max": [-1, 1.5],
        "tol": [-1.0, "0", NAN]}, names={"ranks": ("rank", "ranks")})


def all_cases():
    fz = Fuzz()
    pretrained_cases(fz)
    config_cases(fz)
    function_cases(fz)
    tensor_cases(fz)
    module_cases(fz)
    return fz.cases


def test_every_config_class_and_public_function_is_fuzzed():
    """The fuzz covers every public callable of tkl.__all__ (modules aside, but tkl.tensor's
    functions included) and every config class."""
    labels = " ".join(label for label, _, _ in all_cases())
    public = [n for n in tkl.__all__ if callable(getattr(tkl, n)) and not isinstance(getattr(tkl, n), type(tkl))]
    skip = {"AttentionConfig", "AttentionModule", "GQAAttention", "MLAttention", "TPAttention", "TuckerAttention",
            "History", "TinyLM", "TinyViT"}  # abstract bases; layer classes via build_attention; models via configs
    missing = [n for n in public if n not in skip and n not in labels]
    missing += [f"tensor.{n}" for n in tkl.tensor.__all__ if n not in labels]
    assert not missing, f"not fuzzed: {missing}"


def test_malformed_inputs_raise_value_or_type_errors_naming_the_argument(capsys):
    cases = all_cases()
    accepted, wrong_type, unnamed = [], [], []
    for label, name, fn in cases:
        names = name if isinstance(name, tuple) else (name,)
        try:
            fn()
        except (ValueError, TypeError) as e:
            if not any(n in str(e) for n in names):
                unnamed.append(f"{label}: {type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - that is what the fuzz looks for
            wrong_type.append(f"{label}: {type(e).__name__}: {str(e)[:200]}")
        else:
            accepted.append(label)
    with capsys.disabled():
        print(f"\nfuzz: {len(cases)} malformed inputs tried; {len(cases) - len(accepted) - len(wrong_type)} "
              f"raised ValueError/TypeError")
    assert not accepted, "accepted silently:\n" + "\n".join(accepted)
    assert not wrong_type, "wrong exception type:\n" + "\n".join(wrong_type)
    assert not unnamed, "message does not name the argument:\n" + "\n".join(unnamed)
    assert len(cases) >= 500
