"""The character-level language model harness (adamkit.lab.charlm): trained with adamkit.torch.AdamW, its
validation loss against torch.optim.AdamW's, the oracle, after the same steps from the same weights."""

from __future__ import annotations

import optimi
import pytest
import torch

import adamkit.torch as at
from adamkit.lab import charlm

CONFIG = charlm.CharLMConfig()


def torch_adamw(params):
    return torch.optim.AdamW(params, lr=CONFIG.lr, weight_decay=CONFIG.weight_decay)


def adamkit_adamw(**options):
    return lambda params: at.AdamW(params, lr=CONFIG.lr, weight_decay=CONFIG.weight_decay, **options)


def rel_gap(loss: float, reference: float) -> float:
    return abs(loss - reference) / reference


@pytest.fixture(scope="module")
def fp32_torch() -> dict:
    return charlm.train(torch_adamw, CONFIG)


def test_corpus_is_standard_library_text_split_in_two():
    ids, alphabet = charlm.encode(charlm.corpus())
    train, val = charlm.split(ids, CONFIG.val_fraction)
    assert b"def " in charlm.corpus() and len(ids) > 50_000
    assert bytes(alphabet[i] for i in ids[:200]) == charlm.corpus()[:200]
    assert len(train) + len(val) == len(ids) and 0.08 < len(val) / len(ids) < 0.12


def test_runs_are_deterministic():
    config = charlm.CharLMConfig(steps=15)
    first, second = (charlm.train(torch_adamw, config) for _ in range(2))
    assert first["val_loss"] == second["val_loss"] and first["train_loss"] == second["train_loss"]
    other_seed = charlm.train(torch_adamw, charlm.CharLMConfig(steps=15, seed=1))
    assert other_seed["val_loss"] != first["val_loss"]


def test_fp32_adamkit_matches_torch(fp32_torch):
    """Same weights, same batches, same rule: the same validation loss (the flat buffer's alignment may change
    the order of a matmul's sums, so not bit for bit), and the model learned something."""
    mine = charlm.train(adamkit_adamw(), CONFIG)
    assert rel_gap(mine["val_loss"], fp32_torch["val_loss"]) < 1e-5
    assert fp32_torch["val_loss"] < 0.6 * fp32_torch["initial_val_loss"]
    assert fp32_torch["val_loss"] < 0.6 * fp32_torch["uniform_loss"]


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_low_precision_state_keeps_validation_loss(fp32_torch, state_dtype):
    """bf16 or block-wise int8 moments: validation loss within 1 % of fp32 AdamW's after the same steps."""
    mine = charlm.train(adamkit_adamw(state_dtype=state_dtype), CONFIG)
    assert rel_gap(mine["val_loss"], fp32_torch["val_loss"]) < 0.01


@pytest.fixture(scope="module")
def nearest() -> dict:
    """A model held in bfloat16, rounded to nearest: the updates below half an ulp are lost."""
    return charlm.train(adamkit_adamw(stochastic_rounding=False), CONFIG, torch.bfloat16)


def test_bf16_params_need_stochastic_rounding(fp32_torch, nearest):
    """A model held in bfloat16: with stochastic rounding within 1 % of fp32 AdamW; rounded to nearest, the
    updates below half an ulp are lost and the loss misses that mark (the gap stochastic rounding closes)."""
    sr = charlm.train(adamkit_adamw(), CONFIG, torch.bfloat16)
    reference = fp32_torch["val_loss"]
    assert rel_gap(sr["val_loss"], reference) < 0.01 < rel_gap(nearest["val_loss"], reference)
    assert rel_gap(sr["val_loss"], reference) < rel_gap(nearest["val_loss"], reference) / 3
    assert nearest["val_loss"] > reference  # lost updates: worse, not merely different


def test_bf16_params_with_kahan_sum_keep_validation_loss(fp32_torch, nearest):
    """A model held in bfloat16 with ``kahan_sum=True`` (round to nearest, the rounding error carried to the next
    update): within 0.3 % of fp32 AdamW and of torch-optimi's ``AdamW(kahan_sum=True)`` (the oracle of the
    option); rounded to nearest without it the gap is several times larger."""
    kahan = charlm.train(adamkit_adamw(kahan_sum=True), CONFIG, torch.bfloat16)["val_loss"]
    reference = charlm.train(
        lambda p: optimi.AdamW(p, lr=CONFIG.lr, weight_decay=CONFIG.weight_decay, betas=(0.9, 0.999), eps=1e-8,
                               kahan_sum=True, foreach=False),
        CONFIG, torch.bfloat16,
    )["val_loss"]  # fmt: skip
    assert rel_gap(kahan, fp32_torch["val_loss"]) < 0.003 and rel_gap(kahan, reference) < 0.003
    assert rel_gap(nearest["val_loss"], fp32_torch["val_loss"]) > 3 * 0.003
