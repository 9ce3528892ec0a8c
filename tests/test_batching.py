"""Token-budget batching and padding-free packing: same loss as padded rows, no attention across conversations."""

import pytest
import torch
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_train.data.collator import ConversationCollator
from higgs_train.data.conversations import DataError
from higgs_train.data.sampler import TokenBudgetBatchSampler
from higgs_train.model.loss import audio_loss_terms


@pytest.fixture(scope="module")
def clone_rows(demo_task):
    return demo_task("voice_clone")[:6]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_padded_loss(attn, tiny_checkpoint, processor, clone_rows):
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint, attn_implementation=attn).eval()
    rows = clone_rows[:4]
    padded = ConversationCollator(processor.tokenizer, model.config)(rows)
    packed = ConversationCollator(processor.tokenizer, model.config, packing=True)(rows)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    assert packed["input_ids"].shape[1] == padded["attention_mask"].sum()
    with torch.no_grad():
        a, b = audio_loss_terms(model, padded, model.config), audio_loss_terms(model, packed, model.config)
    assert torch.equal(a.counts, b.counts)
    torch.testing.assert_close(b.sums, a.sums, rtol=1e-5, atol=1e-5)


def test_packing_without_position_restarts_would_differ(tiny_checkpoint, processor, clone_rows):
    """Guards the test above: attention across conversations changes the loss, so equality means isolation."""
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    packed = ConversationCollator(processor.tokenizer, model.config, packing=True)(clone_rows[:2])
    leaky = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1])[None])
    padded = ConversationCollator(processor.tokenizer, model.config)(clone_rows[:2])
    with torch.no_grad():
        leak, ref = audio_loss_terms(model, leaky, model.config), audio_loss_terms(model, padded, model.config)
    assert not torch.allclose(leak.sums, ref.sums, rtol=1e-4)


@pytest.mark.parametrize("mode", ["bucket", "pack"])
def test_token_budget_batches_cover_every_example_once_per_epoch(mode):
    lengths = [50, 400, 120, 90, 300, 60, 250, 80, 500, 30] * 5
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=1000, mode=mode, seed=0)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for batch in batches:
            cost = max(lengths[i] for i in batch) * len(batch) if mode == "bucket" else sum(lengths[i] for i in batch)
            assert cost <= 1000
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first, "each epoch reshuffles"
    assert list(TokenBudgetBatchSampler(lengths, 1000, mode, seed=0)) == first, "same seed, same batches"


def test_an_example_over_the_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="longer than trainer.max_tokens_per_batch=100"):
        TokenBudgetBatchSampler([50, 150], max_tokens=100, mode="pack", seed=0)


def test_too_long_conversations_are_counted_and_warned_never_truncated(demo_dir, processor, model_config, caplog,
                                                                     data_cfg_factory):
    from higgs_train.data.loader import task_conversations

    collator = ConversationCollator(processor.tokenizer, model_config)
    data = demo_dir / "train.jsonl"

    def conversations(**overrides):
        return task_conversations(data, data_cfg_factory(data, **overrides), "voice_clone", 0, collator,
                                  processor.audio_tokenizer)

    everything, _ = conversations()
    lengths = sorted(everything.lengths.tolist())
    limit = lengths[len(lengths) // 2]
    caplog.set_level("INFO", logger="higgs_train")
    kept, skipped = conversations(max_positions=limit, on_bad_row="skip")
    left_out = sum(n > limit for n in lengths)
    assert len(kept) == len(lengths) - left_out > 0
    assert skipped == {f"longer than data.max_positions={limit}": left_out}
    assert all(collator.encode(kept[i]["messages"]).num_positions == kept.lengths[i] <= limit
               for i in range(len(kept)))
    assert any(f"left out {left_out} of {len(lengths)}" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)
    with pytest.raises(DataError, match=f"raise data.max_positions to at least {lengths[0]}"):
        conversations(max_positions=lengths[0] - 1, on_bad_row="skip")
    with pytest.raises(DataError, match="exceed data.max_positions"):
        conversations(max_positions=limit, on_bad_row="fail")
