"""Tiny configs covering every registered variant and option, odd sizes included.
Imported by the test modules (pytest puts tests/ on sys.path)."""
import tucker_lab as tkl

CASES = {
    # MHA / GQA / MQA
    "mha": tkl.MHAConfig(d_model=24, n_heads=4),
    "mha-norope": tkl.MHAConfig(d_model=24, n_heads=4, rope=False),
    "mha-bidir": tkl.MHAConfig(d_model=24, n_heads=4, causal=False),
    "mha-odd-head": tkl.MHAConfig(d_model=21, n_heads=3, d_head=5, rope=False),
    "mha-wide-heads": tkl.MHAConfig(d_model=20, n_heads=4, d_head=8),
    "gqa": tkl.GQAConfig(d_model=24, n_heads=6, n_kv_heads=2),
    "gqa-3": tkl.GQAConfig(d_model=36, n_heads=6, n_kv_heads=3),
    "mqa": tkl.GQAConfig(d_model=24, n_heads=4, n_kv_heads=1),
    # MLA
    "mla": tkl.MLAConfig(d_model=32, n_heads=4, kv_rank=12),
    "mla-q": tkl.MLAConfig(d_model=32, n_heads=4, kv_rank=12, q_rank=10, rope_dim=6),
    "mla-dv": tkl.MLAConfig(d_model=30, n_heads=3, d_head=6, kv_rank=9, q_rank=7, v_head_dim=5, rope_dim=4),
    "mla-coupled": tkl.MLAConfig(d_model=32, n_heads=4, kv_rank=12, q_rank=10, coupled_rope=True),
    "mla-norope": tkl.MLAConfig(d_model=32, n_heads=4, kv_rank=12, rope=False),
    "mla-norm": tkl.MLAConfig(d_model=32, n_heads=4, kv_rank=12, q_rank=10, latent_norm=True),
    # TPA
    "tpa": tkl.TPAConfig(d_model=24, n_heads=4, q_rank=3, k_rank=2, v_rank=2),
    "tpa-kvonly": tkl.TPAConfig(d_model=24, n_heads=4, q_rank=None, k_rank=1, v_rank=3),
    "tpa-const-a": tkl.TPAConfig(d_model=24, n_heads=4, q_rank=3, k_rank=2, v_rank=2, contextual_a=False),
    "tpa-const-a-lowrank": tkl.TPAConfig(d_model=32, n_heads=8, q_rank=2, k_rank=1, v_rank=2, contextual_a=False),
    "tpa-norope": tkl.TPAConfig(d_model=21, n_heads=3, q_rank=2, k_rank=2, v_rank=1, rope=False),
    # Tucker
    "tucker": tkl.TuckerConfig(d_model=24, n_heads=4, ranks_qk=(2, 8, 6), ranks_vo=(3, 5, 4)),
    "tucker-shared": tkl.TuckerConfig(d_model=24, n_heads=4, ranks_qk=(2, 8, 6), ranks_vo=(3, 5, 6),
                                      shared_kv=True),
    "tucker-block": tkl.TuckerConfig(d_model=24, n_heads=4, ranks_qk=(4, 9, 8), ranks_vo=(3, 5, 4),
                                     rope_layout="block", rope_dim=4),
    "tucker-tail": tkl.TuckerConfig(d_model=24, n_heads=4, ranks_qk=(2, 8, 7), ranks_vo=(3, 5, 4),
                                    rope_layout="tail", rope_dim=2),
    "tucker-norope": tkl.TuckerConfig(d_model=25, n_heads=5, ranks_qk=(3, 7, 5), ranks_vo=(2, 6, 3),
                                      rope=False, scale=0.3, causal=False),
}


def modes(cfg):
    """The algebras a config's module can run."""
    if getattr(cfg, "coupled_rope", False):
        return ["absorbed"]
    return list(cfg.modes) if cfg.modes != ("default",) else [None]


# (case id, mode) for every case and every mode it supports
CASE_MODES = [(name, m) for name, cfg in CASES.items() for m in modes(cfg)]
