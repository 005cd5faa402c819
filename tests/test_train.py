"""The trainer: learning happens, nothing is lost (exact resume, Ctrl-C, NaN guard), DDP == one process."""
import os
import signal
import subprocess
import sys

import pytest
import torch

import tucker_lab as tkl
from tucker_lab.data import AssociativeRecall, text_corpus
from tucker_lab.train import TrainConfig, load_checkpoint, lr_at, train

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}.\n" for i in range(400))
ATT = tkl.TuckerConfig(d_model=32, n_heads=4, ranks_qk=(2, 16, 8), ranks_vo=(2, 16, 8))


def tiny_lm(task, attention=ATT, seed=0):
    torch.manual_seed(seed)
    return tkl.TinyLM(tkl.LMConfig(vocab_size=task.vocab_size, n_layers=1, attention=attention,
                                   max_seq_len=task.block_size))


def cfg(**kw):
    return TrainConfig(**{**dict(steps=30, batch_size=8, lr=3e-3, warmup_steps=5, eval_every=10,
                                 eval_batches=2, progress=False), **kw})


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_decreases():
    task = text_corpus(TEXT, block_size=16)
    hist = train(tiny_lm(task), task, cfg(steps=120, eval_every=40))
    assert hist.eval_step == [40, 80, 120]
    assert hist.val_loss[-1] < 0.7 * hist.val_loss[0] and hist.val_loss[-1] < 2.0
    assert len(hist.train_loss) == 120 and hist.lr[0] == pytest.approx(3e-3 / 5)


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    task = text_corpus(TEXT, block_size=16)
    ref_model = tiny_lm(task)
    ref = train(ref_model, task, cfg())

    def ctrl_c_at_13(step, hist):
        if step == 13:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; finishes step 13, then stops

    model = tiny_lm(task)
    first = train(model, task, cfg(ckpt_dir=str(tmp_path)), callback=ctrl_c_at_13)
    assert first.interrupted and first.step[-1] == 13
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)  # safe to load
    assert ckpt["step"] == 14
    resumed_model = tiny_lm(task, seed=123)  # fresh weights: everything must come from the checkpoint
    second = train(resumed_model, task, cfg(ckpt_dir=str(tmp_path)))
    assert not second.interrupted
    assert second.train_loss == ref.train_loss and second.val_loss == ref.val_loss  # bit for bit
    for k, v in params(ref_model).items():
        assert torch.equal(v, params(resumed_model)[k]), k
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 30


class NaNAt:
    """A task whose training loss becomes NaN at one step."""

    def __init__(self, task, at):
        self.task, self.at, self.calls = task, at, 0

    def batch(self, *a):
        return self.task.batch(*a)

    def loss(self, out, y):
        loss = self.task.loss(out, y)
        if not torch.is_grad_enabled():  # an evaluation, not a training step
            return loss
        self.calls += 1
        return loss * float("nan") if self.calls == self.at + 1 else loss

    def metrics(self, out, y):
        return self.task.metrics(out, y)


def test_nan_loss_stops_naming_the_step(tmp_path):
    task = text_corpus(TEXT, block_size=16)
    with pytest.raises(FloatingPointError, match=r"the loss is nan at step 7 .*last checkpoint: .*last.pt"):
        train(tiny_lm(task), NaNAt(task, 7), cfg(eval_every=5, eval_batches=1, ckpt_dir=str(tmp_path)))


def test_lr_schedule():
    c = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert [lr_at(s, c) for s in (0, 9)] == pytest.approx([0.1, 1.0])
    assert lr_at(10, c) == pytest.approx(1.0) and lr_at(55, c) == pytest.approx(0.55) and lr_at(100, c) == pytest.approx(0.1)


@pytest.mark.parametrize("kw,msg", [(dict(steps=0), "steps must be an integer >= 1"),
                                    (dict(warmup_steps=50, steps=10), r"warmup_steps must be an integer in \[0, steps=10\]"),
                                    (dict(lr=-1.0), "lr must be a positive number"),
                                    (dict(precision="fp8"), "precision must be"),
                                    (dict(grad_clip=0.0), "grad_clip must be None or a positive number")])
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)


DDP_SCRIPT = """
import torch, tucker_lab as tkl, sys
sys.path.insert(0, {tests!r})
from test_train import TEXT, cfg, tiny_lm
from tucker_lab.data import text_corpus
task = text_corpus(TEXT, block_size=16)
model = tiny_lm(task)
hist = tkl.train(model, task, cfg(steps=12))
rank = torch.distributed.get_rank()
torch.save({{"state": model.state_dict(), "loss": hist.train_loss, "world": torch.distributed.get_world_size()}},
           {out!r} + f"/rank{{rank}}.pt")
torch.distributed.destroy_process_group()
"""


def test_ddp_two_cpu_processes_equal_one_process(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=os.path.dirname(__file__), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == 2
    task = text_corpus(TEXT, block_size=16)
    single = tiny_lm(task)
    hist = train(single, task, cfg(steps=12))
    for k, v in single.state_dict().items():
        assert torch.equal(r0["state"][k], r1["state"][k]), k  # ranks stay in sync
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)  # == one process, whole batch
    torch.testing.assert_close(torch.tensor(r0["loss"]), torch.tensor(hist.train_loss), rtol=1e-5, atol=1e-6)


def test_recall_task_is_learnable():
    task = AssociativeRecall(n_keys=8, n_values=8, n_pairs=4, n_queries=4)
    torch.manual_seed(0)
    model = tkl.TinyLM(tkl.LMConfig(vocab_size=task.vocab_size, n_layers=1,
                                    attention=tkl.MHAConfig(d_model=32, n_heads=2), max_seq_len=task.seq_len))
    hist = train(model, task, cfg(steps=150, batch_size=32, eval_every=75, eval_batches=4))
    assert hist.val_loss[-1] < hist.val_loss[0]
    assert hist.val_metrics["accuracy"][-1] > 0.9  # chance is 1/8
