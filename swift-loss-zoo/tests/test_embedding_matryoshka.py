"""``matryoshka``: an embedding loss over leading slices of the embeddings, weighted (ms-swift ``--mrl_dims``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import swift_zoo
from swift_zoo import ConfigError, LossInputError
from swift_zoo.testing import check_loss


def pairs(seed: int = 0, batch: int = 6, dim: int = 8):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    b = a + torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    labels = (torch.arange(batch) % 2).to(torch.float64)
    return {"embeddings_a": a, "embeddings_b": b}, labels


def test_weighted_sum_of_the_inner_loss_on_normalised_slices():
    outputs, labels = pairs()
    inner = swift_zoo.build_loss("contrastive", distance="euclidean")
    expected = sum(
        weight * inner({key: F.normalize(value[:, :dim], dim=-1) for key, value in outputs.items()}, labels).item()
        for dim, weight in ((8, 1.0), (4, 0.5), (2, 2.0))
    )
    loss = swift_zoo.build_loss("matryoshka", loss={"type": "contrastive", "kwargs": {"distance": "euclidean"}},
                                dims={"8": 1.0, "4": 0.5, 2: 2.0})  # ms-swift's JSON gives string keys
    assert loss(outputs, labels).item() == pytest.approx(expected, rel=1e-12)
    assert set(loss.metrics) >= {"dim_8/loss", "dim_4/loss", "dim_2/loss"}
    raw = swift_zoo.build_loss("matryoshka", loss=inner.name, dims=[4], normalize=False)
    assert raw(outputs, labels).item() == pytest.approx(
        swift_zoo.build_loss("contrastive")({k: v[:, :4] for k, v in outputs.items()}, labels).item(), rel=1e-12)


def test_the_wrapper_keeps_the_inner_unit_and_splits_exactly():
    outputs, labels = pairs(seed=1)
    loss = swift_zoo.build_loss("matryoshka", loss="cosine_similarity", dims=[8, 3], weights=[1.0, 0.25])
    assert loss.reduction_unit == swift_zoo.get_loss("cosine_similarity").reduction_unit and not loss.batch_dependent
    assert int(loss.count_units(outputs, labels)) == 6
    parts = [({k: v[a:b] for k, v in outputs.items()}, labels[a:b]) for a, b in ((0, 2), (2, 6))]
    split = sum(loss(part, part_labels, num_items_in_batch=6) for part, part_labels in parts)
    assert split.item() == pytest.approx(loss(outputs, labels).item(), rel=1e-12)
    infonce = swift_zoo.build_loss("matryoshka", loss="infonce", dims=[8])
    assert infonce.reduction_unit == "query" and infonce.batch_dependent


def test_configuration_errors_name_what_was_expected():
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("matryoshka", loss="dpo", dims=[4])
    assert "reads no embedding" in str(info.value) and info.value.key == "loss.type"
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("matryoshka", loss="infonce", dims=[4, 4])
    assert info.value.key == "dims" and "distinct" in str(info.value)
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("matryoshka", loss="infonce", dims={4: 1.0}, weights=[1.0])
    assert info.value.key == "weights"
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("matryoshka", loss="infonce", dims=[4, 2], weights=[1.0])
    assert info.value.key == "weights"
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("matryoshka", loss="infonce", dims=[0])
    assert info.value.key == "dims"
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_loss("matryoshka", loss={"type": "infonce", "kwargs": {"temperature": -1.0}}, dims=[4])
    assert info.value.key == "loss.kwargs.temperature"


def test_a_dim_wider_than_the_embedding_is_refused():
    outputs, labels = pairs(dim=8)
    with pytest.raises(LossInputError) as info:
        swift_zoo.build_loss("matryoshka", loss="contrastive", dims=[16, 4])(outputs, labels)
    assert str(info.value) == ("matryoshka: dims [16] exceed the embedding dimension D=8 of embeddings_a, "
                               "embeddings_b; expected dims <= 8")


def test_matryoshka_passes_the_conformance_suite():
    check_loss("matryoshka")
