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


@pytest.mark.parametrize("layout", ["fused", "adjacent"])
def test_recall_targets_are_the_queried_values(layout):
    task = AssociativeRecall(n_keys=16, n_values=10, n_pairs=6, n_queries=5, layout=layout)
    x, y = task.batch("train", 16, torch.Generator().manual_seed(3))
    assert x.shape == (16, task.seq_len) and int(x.max()) < task.vocab_size
    K, V = 16, 10
    for b in range(16):
        if layout == "fused":  # pair tokens key * V + value, then query tokens K * V + key
            pairs = {t // V: t % V for t in x[b, :6].tolist()}
            queried = [t - K * V for t in x[b, 6:].tolist()]
            answers = [t - K * V - K for t in y[b, 6:].tolist()]
            assert (y[b, :6] == -100).all()
        else:  # key, value (offset by K), ..., then query key, value
            pairs = dict(zip(x[b, 0:12:2].tolist(), [v - K for v in x[b, 1:12:2].tolist()]))
            scored = (y[b] != -100).nonzero()[:, 0].tolist()
            queried = [x[b, j].item() for j in scored]
            answers = [y[b, j].item() - K for j in scored]
        assert len(pairs) == 6 and len(answers) == 5  # distinct keys
        assert answers == [pairs[k] for k in queried]
    with pytest.raises(ValueError, match=r"n_pairs \(distinct keys, at most n_keys\) must be an integer in \[1, 4\]; got 5"):
        AssociativeRecall(n_keys=4, n_pairs=5)
    with pytest.raises(ValueError, match="AssociativeRecall.n_values must be an integer >= 1; got 0"):
        AssociativeRecall(n_values=0)


def test_corpus_from_a_file(tmp_path):
    (tmp_path / "t.txt").write_text("xyz" * 100, encoding="utf-8")
    c = text_corpus(path=tmp_path / "t.txt", block_size=4)
    assert c.name == "t.txt" and c.vocab == ["x", "y", "z"]


def test_digits_offline_and_stratified():
    d = Digits()
    (xt, yt), (_, yv) = d.splits["train"], d.splits["val"]
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


def test_a_corpus_repr_is_short():
    """repr() of a task never prints its text (the Shakespeare corpus is 5 million characters)."""
    text = "to be or not to be " * 10_000
    corpus = text_corpus(text, block_size=8)
    r = repr(corpus)
    assert len(r) < 200 and "190,000 characters" in r and "vocab_size=7" in r and text[:40] not in r
