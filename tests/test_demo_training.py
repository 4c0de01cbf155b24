"""The demo model's training objective: pure tensor logic, no training run."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mediarec.encoders.synthetic.train import UNCONSTRAINED, Batch, multi_positive_loss


def test_with_one_positive_per_row_it_is_the_clip_cross_entropy() -> None:
    logits = torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    positive = torch.zeros(6, 9, dtype=torch.bool)
    positive[torch.arange(6), torch.arange(6)] = True
    expected = F.cross_entropy(logits, torch.arange(6))
    assert torch.allclose(multi_positive_loss(logits, positive), expected, atol=1e-5)


def test_a_second_true_match_is_not_pushed_away() -> None:
    logits = torch.tensor([[5.0, 5.0, 0.0]])
    one = torch.tensor([[True, False, False]])
    both = torch.tensor([[True, True, False]])
    # As a negative, the equally close second match costs a lot; as a positive it does not.
    assert multi_positive_loss(logits, one) > 0.6
    assert multi_positive_loss(logits, both) < 0.01


def test_partial_captions_match_every_picture_with_the_named_values() -> None:
    labels = torch.tensor([[0, 1, 2, 3, 0], [0, 2, 2, 3, 1], [1, 1, 0, 0, 0]])
    u = UNCONSTRAINED
    constraints = torch.tensor(
        [
            [0, 1, 2, 3, 0],  # the full caption of picture 0
            [0, u, u, u, u],  # "circles": pictures 0 and 1
            [u, 1, u, u, u],  # "orange shapes": pictures 0 and 2
            [1, 2, u, u, u],  # matches nobody
        ]
    )
    batch = Batch(
        pixels=torch.zeros(3, 3, 4, 4), texts=torch.zeros(4, 5), constraints=constraints,
        labels=labels,
    )
    expected = [[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert batch.matches().int().tolist() == expected
