"""Datasets: deterministic splits, correct targets, offline digits, the cached corpus."""
import pytest
import torch

from tucker_lab.data import AssociativeRecall, Digits, shakespeare, text_corpus


def test_char_corpus_split_and_batches():
    c = text_corpus("abcdefghij" * 100, block_size=8)
    assert c.vocab_size == 10 and c.decode(c.encode("badge")) == "badge"
    assert len(c.splits["train"]) == 900 and torch.equal(c.splits["val"], c.encode("abcdefghij" * 10))
    g = torch.Generator().manual_seed(0)
    x, y = c.batch("train", 4, g)
    assert x.shape == y.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])
    x2, _ = c.batch("train", 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # deterministic given the seed
    with pytest.raises(ValueError, match="not in the vocabulary"):
        c.encode("xyz")
    with pytest.raises(ValueError, match="need at least 258"):
        text_corpus("short", block_size=128)
    with pytest.raises(ValueError, match="exactly one of text"):
        text_corpus()


def test_recall_targets_are_the_queried_values():
    task = AssociativeRecall(vocab_size=32, n_pairs=6, n_queries=5)
    x, y = task.batch("train", 16, torch.Generator().manual_seed(3))
    assert x.shape == (16, task.seq_len - 1)
    for b in range(16):
        pairs = dict(zip(x[b, 0:12:2].tolist(), x[b, 1:12:2].tolist()))
        assert len(pairs) == 6 and all(k < 16 <= v for k, v in pairs.items())  # disjoint halves
        scored = (y[b] != -100).nonzero()[:, 0].tolist()
        assert len(scored) == 5
        for j in scored:  # the token at j is a queried key; the target is its value
            assert y[b, j].item() == pairs[x[b, j].item()]
    with pytest.raises(ValueError, match="n_pairs must be in"):
        AssociativeRecall(vocab_size=8, n_pairs=5)


def test_corpus_from_a_file(tmp_path):
    (tmp_path / "t.txt").write_text("xyz" * 100, encoding="utf-8")
    c = text_corpus(path=tmp_path / "t.txt", block_size=4)
    assert c.name == "t.txt" and c.vocab == ["x", "y", "z"]


def test_digits_offline_and_stratified():
    d = Digits()
    (xt, yt), (xv, yv) = d.splits["train"], d.splits["val"]
    assert xt.shape[1:] == (8, 8) and len(yt) + len(yv) == 1797 and 0 <= xt.min() and xt.max() <= 1
    counts = torch.bincount(yv, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37  # about 20% of each class
    assert torch.equal(Digits().splits["val"][1], yv)  # deterministic


def test_shakespeare_corpus_is_fetched_once_and_credited(tmp_path, monkeypatch):
    monkeypatch.setenv("TUCKER_LAB_CACHE", str(tmp_path))
    c = shakespeare(block_size=64)
    assert len(c.text) > 5_000_000 and c.vocab_size == 84 and "CC BY 2.5" in c.credit
    assert (tmp_path / "shakespeare_okf_0.6.txt").exists()
    assert "Hamlet" in c.text or "HAMLET" in c.text
