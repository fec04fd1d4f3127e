"""Selection inside the Hugging Face Trainer: the ids ``select_batch`` would pick, exact resume
from the Trainer's checkpoints, gradient accumulation, logging, streams and clear refusals."""

from __future__ import annotations

import copy
import os

import pytest
import torch

pytest.importorskip(
    "transformers", reason="the HF tests need the hf extra: pip install 'siftdata[hf]'"
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _hf_setup import GlossDataset, GlossStream, tiny_bert, training_args  # noqa: E402
from siftdata.integrations.hf import STATE_FILE, SelectiveTrainer  # noqa: E402
from siftdata.online import build_method, select_batch  # noqa: E402
from siftdata.store import ScoreTable  # noqa: E402

pytestmark = pytest.mark.integration
N, BIG = 400, 2**25  # ids above 2^24 stay exact


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(n=N, offset=BIG) -> ScoreTable:
    g = torch.Generator().manual_seed(5)
    return ScoreTable(torch.arange(n) + offset, 2.5 + torch.rand(n, generator=g))


def _method(name="learnability", seed=0):
    ids = torch.arange(N) + BIG
    return build_method(
        name, reference=_reference(), example_ids=ids, num_classes=25, super_batch_factor=4,
        seed=seed,
    )  # fmt: skip


class Recording(SelectiveTrainer):
    """Keeps every step's super-batch, the model's weights before it and the ids trained on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.super_batches, self.weights_before, self.trained = [], [], []

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.super_batches.append({k: v.clone() for k, v in inputs.items()})
        self.weights_before.append(copy.deepcopy(self.model.state_dict()))
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self._pending is not None:
            self.trained.append(self._pending[0].clone())
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def _trainer(out, method, dataset=None, cls=Recording, **args):
    return cls(
        model=tiny_bert(),
        args=training_args(out, **args),
        train_dataset=dataset if dataset is not None else GlossDataset(N, id_offset=BIG),
        method=method,
        super_batch_factor=4,
    )


@pytest.mark.parametrize("name", ["learnability", "learnability-topk", "importance-always"])
def test_the_trainer_picks_what_select_batch_picks_from_the_same_state(tmp_path, name):
    trainer = _trainer(tmp_path, _method(name))
    trainer.train()
    assert len(trainer.trained) == 6 and all(t.shape == (8,) for t in trainer.trained)
    method = _method(name)  # a fresh selector with the same seed: its draws in step order
    model = tiny_bert()
    for batch, weights, trained in zip(
        trainer.super_batches, trainer.weights_before, trainer.trained, strict=True
    ):
        model.load_state_dict(weights)
        features = {k: batch[k] for k in ("input_ids", "attention_mask")}
        selection = select_batch(
            model,
            features,
            batch["labels"],
            batch["id"],
            k=8,
            scorer=method.scorer,
            selector=method.selector,
            forward=lambda m, x: m(**x).logits,
        )
        assert torch.equal(batch["id"][selection.indices], trained)
    assert (trainer.trained[0] >= BIG).all()


def test_a_resumed_run_selects_what_an_uninterrupted_one_selects(tmp_path):
    args = dict(max_steps=6, save_strategy="steps", save_steps=3)
    whole = _trainer(tmp_path / "whole", _method("learnability+stale"), **args)
    whole.train()
    assert (tmp_path / "whole" / "checkpoint-3" / STATE_FILE).exists()
    resumed = _trainer(tmp_path / "whole", _method("learnability+stale"), **args)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-3"))
    assert len(resumed.trained) == 3
    for a, b in zip(whole.trained[3:], resumed.trained, strict=True):
        assert torch.equal(a, b)
    memory_whole = whole.method.scorer.state_dict()
    memory_resumed = resumed.method.scorer.state_dict()
    assert str(memory_whole) == str(memory_resumed)


def test_gradient_accumulation_selects_every_micro_batch_and_logs_the_stats(tmp_path):
    trainer = _trainer(
        tmp_path, _method(), max_steps=3, gradient_accumulation_steps=2, logging_steps=1,
        lr_scheduler_type="linear",
    )  # fmt: skip
    trainer.train()
    assert trainer.selection_steps == 6 and len(trainer.trained) == 6
    # the schedule spans the 3 optimizer steps (not the 6 selections): decayed to 0 at the end
    assert trainer.state.global_step == 3 and trainer.lr_scheduler.get_last_lr()[0] == 0.0
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 3
    assert all("selection/selected_score_mean" in row for row in logged), logged[0]


def test_a_stream_is_selected_from_the_next_super_batch_of_its_rows(tmp_path):
    rows = GlossDataset(N, id_offset=BIG)
    trainer = _trainer(tmp_path, _method(), dataset=GlossStream(rows), max_steps=13)
    trainer.train()
    for step, trained in enumerate(trainer.trained):  # the stream in order, 32 a super-batch
        offered = set(range(BIG + 32 * step, min(BIG + 32 * (step + 1), BIG + N)))
        assert set(trained.tolist()) <= offered and trained.unique().numel() == 8
    assert len(offered) == 16  # the stream's last super-batch is short: 8 of its 16


def test_a_dataset_without_ids_and_a_checkpoint_without_state_are_refused(tmp_path):
    rows = GlossDataset(N)

    class NoIds(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return {k: v for k, v in rows[i].items() if k != "id"}

    with pytest.raises(ValueError, match="has no 'id' column"):
        _trainer(tmp_path / "a", _method(), dataset=NoIds()).train()
    (tmp_path / "b" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no siftdata_selection.pt"):
        _trainer(tmp_path / "b", _method()).train(resume_from_checkpoint=True)


def test_a_live_reference_on_a_stream_selects_what_its_cache_selects(tmp_path):
    from siftdata.integrations.hf import LiveReference, reference_losses

    rows, reference = GlossDataset(N, id_offset=BIG), tiny_bert(seed=3)
    ids = torch.arange(N) + BIG

    def method(ref):
        return build_method(
            "learnability-topk", reference=ref, example_ids=ids, num_classes=25,
            super_batch_factor=4,
        )  # fmt: skip

    cached = _trainer(tmp_path / "a", method(reference_losses(reference, rows, progress=False)),
                      dataset=GlossStream(rows), max_steps=4)  # fmt: skip
    cached.train()
    live = LiveReference(reference)
    streamed = Recording(
        model=tiny_bert(),
        args=training_args(tmp_path / "b", max_steps=4),
        train_dataset=GlossStream(rows),
        method=method(live),
        super_batch_factor=4,
        live_reference=live,
    )
    streamed.train()
    for a, b in zip(cached.trained, streamed.trained, strict=True):
        assert torch.equal(a, b)
    unfed = _trainer(tmp_path / "c", method(LiveReference(reference)), dataset=GlossStream(rows))
    with pytest.raises(ValueError, match="pass it to SelectiveTrainer as live_reference="):
        unfed.train()
