"""Tests for siftdata.models: shapes, width scaling, channels_last and the builder."""

from __future__ import annotations

import pytest
import torch

from siftdata.models import MLP, MODEL_NAMES, SmallCNN, build_model


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 784)])
def test_output_shapes(name, shape):
    model = build_model(name, num_classes=7)
    out = model(torch.randn(*shape))
    assert out.shape == (5, 7)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_width_scales_parameter_count(name):
    small, base, big = (_n_params(build_model(name, width=w)) for w in (0.25, 1.0, 2.0))
    assert small < base < big


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiny_width_keeps_at_least_one_unit(name):
    model = build_model(name, width=1e-6)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_default_sizes():
    mlp = build_model("mlp")
    assert [m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)] == [
        512,
        256,
        10,
    ]
    cnn = build_model("cnn")
    convs = [m.out_channels for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 64]


def test_cnn_parameters_and_input_channels_last():
    model = SmallCNN()
    conv = model.conv[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 28, 28)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x_cl), model(x))
    plain = SmallCNN(channels_last=False)
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(plain(x), model(x), rtol=1e-4, atol=1e-5)


def test_cnn_trains_one_step():
    model = SmallCNN()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("model", [MLP(), SmallCNN()])
def test_eval_and_train_mode_agree(model):
    x = torch.randn(3, 1, 28, 28)
    model.train()
    a = model(x)
    model.eval()
    torch.testing.assert_close(model(x), a)
    assert model.features(x).shape[0] == 3


def test_build_model_errors():
    with pytest.raises(ValueError, match="mlp.*cnn"):
        build_model("resnet")
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", width=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("cnn", num_classes=0)


def test_mlp_rejects_bad_hidden():
    with pytest.raises(ValueError, match="hidden"):
        MLP(hidden=(0,))
