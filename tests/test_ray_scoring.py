"""Ray Data scoring on a small local Ray: the same scores as the local scorer, stores that
``siftdata select`` reads, and repeats refused."""

from __future__ import annotations

import pytest
import torch

ray = pytest.importorskip(
    "ray",
    reason="the Ray tests need the ray extra: pip install 'siftdata[ray]' (make test-integration)",
)

from siftdata.cli.main import main  # noqa: E402
from siftdata.data import load_fashion_mnist, to_float_images  # noqa: E402
from siftdata.integrations.ray_scoring import score_with_ray, stores_from_parquet  # noqa: E402
from siftdata.models import build_model  # noqa: E402
from siftdata.offline.proxy_scores import SCORE_DIRECTIONS  # noqa: E402
from siftdata.offline.scoring import score_dataset  # noqa: E402
from siftdata.offline.stored import load_score  # noqa: E402
from siftdata.scoring.scorers import Entropy, GradNormBound  # noqa: E402
from siftdata.store import dataset_fingerprint  # noqa: E402

pytestmark = pytest.mark.integration
N = 2000


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _problem():
    images, labels = load_fashion_mnist("train")
    images, labels = images[:N], labels[:N]
    torch.manual_seed(0)
    model = build_model("mlp").eval()
    return model, images, labels


def test_ray_scores_equal_the_local_scorer_and_select_reads_them(local_ray, tmp_path):
    model, images, labels = _problem()
    x = to_float_images(images)
    scorers = {"entropy": Entropy(), "el2n": GradNormBound()}
    rows = [{"id": i, "image": x[i].numpy(), "label": int(labels[i])} for i in range(N)]
    dataset = ray.data.from_items(rows[::-1])  # any order: the stores are keyed by id
    directions = {name: SCORE_DIRECTIONS[name] for name in scorers}
    stores = score_with_ray(
        dataset,
        model,
        scorers,
        tmp_path / "scores",
        fingerprint=dataset_fingerprint(labels, images),
        directions=directions,
        proxy={"name": "mlp", "epochs": 0},
        concurrency=2,
        batch_size=500,
    )
    local = score_dataset(model, x, labels, scorers, progress=False)
    for name, path in stores.items():
        table = load_score(path, score=name)
        assert torch.equal(table.ids, torch.arange(N))
        torch.testing.assert_close(table.scores, local.scores[name], rtol=1e-5, atol=1e-6)
    out = tmp_path / "kept"
    assert main(["select", str(stores["entropy"]), "--out", str(out), "--keep", "0.25"]) == 0
    assert (out / "manifest.json").exists()


def test_an_id_scored_twice_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "parquet"
    folder.mkdir()
    for part in range(2):  # the same block written twice
        pq.write_table(
            pa.table({"id": [1, 2, 3], "entropy": [0.1, 0.2, 0.3]}), folder / f"{part}.parquet"
        )
    with pytest.raises(ValueError, match="3 id\\(s\\) scored more than once"):
        stores_from_parquet(
            folder,
            tmp_path / "stores",
            scores=["entropy"],
            fingerprint={},
            directions={"entropy": "higher-keep"},
            proxy={},
        )


def test_siftdata_score_on_ray_writes_the_local_stores(local_ray, tmp_path):
    argv = ["score", "--pool-size", str(N), "--epochs", "1", "--scores", "entropy,margin,kcenter"]
    argv += ["--no-progress", "--file-format", "parquet"]
    assert main([*argv, "--out", str(tmp_path / "local")]) == 0
    ray_argv = [*argv, "--engine", "ray", "--ray-workers", "2", "--out", str(tmp_path / "ray")]
    assert main(ray_argv) == 0
    for name in ("entropy", "margin", "kcenter"):  # kcenter: from the actors' embeddings
        local, on_ray = (load_score(tmp_path / f / name) for f in ("local", "ray"))
        assert torch.equal(local.ids, on_ray.ids)
        torch.testing.assert_close(on_ray.scores, local.scores, rtol=1e-6, atol=1e-7)
    kept = tmp_path / "kept"
    assert (
        main(["select", str(tmp_path / "ray" / "margin"), "--out", str(kept), "--keep", "0.5"]) == 0
    )


def test_rows_come_back_in_the_datasets_order_and_each_id_once():
    from siftdata.integrations.ray_scoring import _rows_in_order

    ids = torch.tensor([7, 3, 2**40, 5])
    returned = torch.tensor([5, 2**40, 7, 3])
    assert torch.equal(returned[_rows_in_order(returned, ids)], ids)
    with pytest.raises(ValueError, match="not each id once"):
        _rows_in_order(torch.tensor([5, 5, 7, 3]), ids)
