"""Selection in Lightning: the ids ``select_batch`` would pick, the callback's state through a
checkpoint, the warning when Lightning would reorder an ordered sampler, and clear errors."""

from __future__ import annotations

import copy

import pytest
import torch

pl = pytest.importorskip(
    "lightning.pytorch",
    reason="the Lightning tests need the lightning extra: pip install 'siftdata[lightning]'",
)

from _lightning_setup import Learner, loader, method, trainer  # noqa: E402
from siftdata.integrations.lightning import SelectionCallback, reordering_warning  # noqa: E402
from siftdata.online import select_batch  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Recording(Learner):
    def __init__(self, selection):
        super().__init__(selection)
        self.super_batches, self.weights_before = [], []

    def training_step(self, batch, batch_idx):
        self.super_batches.append(tuple(t.clone() for t in batch))
        self.weights_before.append(copy.deepcopy(self.net.state_dict()))
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("name", ["learnability", "learnability+stale", "importance-always"])
def test_lightning_picks_what_select_batch_picks_from_the_same_state(tmp_path, name):
    trained = []
    selection = SelectionCallback(method(name), super_batch_factor=4, on_trained=trained.append)
    module = Recording(selection)
    trainer(tmp_path, selection).fit(module, loader(64))
    assert len(trained) == 5 and all(t.shape == (16,) for t in trained)
    fresh, net = method(name), Learner(selection).net
    for (ids, x, y), weights, chosen in zip(
        module.super_batches, module.weights_before, trained, strict=True
    ):
        net.load_state_dict(weights)
        picked = select_batch(net, x, y, ids, k=16, scorer=fresh.scorer, selector=fresh.selector)
        assert torch.equal(ids[picked.indices], chosen)
        if fresh.scorer.remembers:  # what the loop would remember: the trained losses
            with torch.no_grad():
                losses = torch.nn.functional.cross_entropy(
                    net(x[picked.indices]), y[picked.indices], reduction="none"
                )
            fresh.scorer.observe(ids[picked.indices], losses)


def test_the_callbacks_state_goes_through_a_checkpoint(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    selection = SelectionCallback(method("learnability+stale"), super_batch_factor=4)
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_last=True)
    trainer(tmp_path, selection, max_steps=3, enable_checkpointing=True, callbacks=[saver]).fit(
        Learner(selection), loader(64)
    )
    again = SelectionCallback(method("learnability+stale"), super_batch_factor=4)
    trainer(tmp_path, again, max_steps=3).fit(
        Learner(again), loader(64), ckpt_path=str(tmp_path / "last.ckpt")
    )
    assert again.steps == 3
    assert str(again.state_dict()) == str(selection.state_dict())  # memory, generator, steps


def test_an_ordered_sampler_wrapped_by_lightning_draws_a_warning():
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    from torch.utils.data import DataLoader

    from siftdata.online.infobatch import InfoBatchSampler

    sampler = InfoBatchSampler(100, epochs=3, seed=0)
    wrapped = DistributedSamplerWrapper(sampler, num_replicas=2, rank=0, shuffle=True)
    message = reordering_warning(DataLoader(range(100), sampler=wrapped))
    assert "InfoBatchSampler" in message and "use_distributed_sampler=False" in message
    assert reordering_warning(DataLoader(range(100), sampler=sampler)) is None


def test_a_super_batch_that_is_not_whole_batches_is_refused(tmp_path):
    selection = SelectionCallback(method(), super_batch_factor=3)
    with pytest.raises(ValueError, match="a super-batch of 64 rows is not 3 training batches"):
        trainer(tmp_path, selection).fit(Learner(selection), loader(64))


def test_the_same_ids_through_every_door_hf_lightning_and_select_batch(tmp_path):
    """One model state, one super-batch, one reference, one seed: the HF Trainer path, the
    Lightning path and select_batch in a plain loop pick the same example ids."""
    pytest.importorskip("transformers", reason="needs the hf extra: pip install 'siftdata[hf]'")
    from _hf_setup import GlossDataset, tiny_bert, training_args
    from test_hf_trainer import BIG, Recording, _method

    hf = Recording(
        model=tiny_bert(),
        args=training_args(tmp_path / "hf", max_steps=1),
        train_dataset=GlossDataset(400, id_offset=BIG),
        method=_method(),
        super_batch_factor=4,
    )
    hf.train()
    batch, weights = hf.super_batches[0], hf.weights_before[0]

    class Bert(pl.LightningModule):
        def __init__(self, selection):
            super().__init__()
            self.bert, self.selection = tiny_bert(), selection
            self.bert.load_state_dict(weights)

        def forward(self, x):
            return self.bert(input_ids=x[0], attention_mask=x[1]).logits

        def training_step(self, rows, batch_idx):
            from siftdata.integrations.lightning import selective_step

            return selective_step(self, rows, self.selection)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    lightning_ids = []
    selection = SelectionCallback(_method(), super_batch_factor=4, on_trained=lightning_ids.append)
    rows = [(batch["id"], (batch["input_ids"], batch["attention_mask"]), batch["labels"])]
    loader = torch.utils.data.DataLoader(rows, batch_size=None)  # the super-batch as it is
    trainer(tmp_path / "pl", selection, max_steps=1).fit(Bert(selection), loader)

    model, fresh = tiny_bert(), _method()
    model.load_state_dict(weights)
    features = {k: batch[k] for k in ("input_ids", "attention_mask")}
    plain = select_batch(model, features, batch["labels"], batch["id"], k=8, scorer=fresh.scorer,
                         selector=fresh.selector, forward=lambda m, x: m(**x).logits)  # fmt: skip
    plain_ids = batch["id"][plain.indices]
    assert torch.equal(hf.trained[0], plain_ids) and torch.equal(lightning_ids[0], plain_ids)
