"""The collator's ids equal the checkpoint processor's, token for token, and its labels teach exactly the target."""

import copy

import pytest
import torch

from higgs_train.data.audio import load_audio
from higgs_train.data.collator import ConversationCollator

X = -100


def _processor_inputs(processor, conversations):
    """What `apply_chat_template` builds for the same conversations, with the waveforms themselves."""
    converted = copy.deepcopy([c["messages"] for c in conversations])
    for messages in converted:
        for message in messages:
            message.pop("supervised", None)
            for item in message["content"]:
                item.pop("codes", None)
                if item["type"] == "audio":
                    item["audio"] = load_audio(item.pop("path"))
    return processor.apply_chat_template(converted, tokenize=True, return_dict=True, return_tensors="pt")


@pytest.mark.parametrize("task", ["smart_voice", "multi_speaker", "voice_clone", "multi_speaker_clone"])
def test_ids_match_the_processor_for_every_task_in_a_mixed_length_batch(task, processor, model_config, demo_task):
    conversations = demo_task(task)[10:13]
    ours = ConversationCollator(processor.tokenizer, model_config)(conversations)
    reference = _processor_inputs(processor, conversations)
    # The processor pads text on the left and we pad on the right: compare each row's real tokens.
    for b in range(len(conversations)):
        assert ours["input_ids"][b][ours["attention_mask"][b].bool()].tolist() == \
            reference["input_ids"][b][reference["attention_mask"][b].bool()].tolist()
    assert torch.equal(ours["audio_input_ids_mask"], reference["audio_input_ids_mask"])
    assert torch.equal(ours["audio_input_ids"][ours["audio_input_ids_mask"]],
                       reference["audio_input_ids"][reference["audio_input_ids_mask"]])


def _hand_built(codes_reference, codes_target):
    system = {"role": "system", "content": [{"type": "text", "text": "S"}]}
    return {"id": "x", "messages": [
        system,
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "assistant", "content": [{"type": "audio", "codes": codes_reference}], "supervised": False},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "audio", "codes": codes_target}]},
    ]}


def test_labels_element_by_element_on_a_voice_clone_example(processor, model_config):
    tok = processor.tokenizer
    K = model_config.num_codebooks
    reference = torch.full((K, 1), 7)
    target = torch.arange(2 * K).reshape(K, 2)
    batch = ConversationCollator(tok, model_config)([_hand_built(reference, target)])

    # Reference clip (1 frame -> 1 + 2 + 7 = 10 positions) is context: all ignored. Target (2 frames -> 11 positions).
    assert batch["audio_input_ids"].shape == (1, 10 + 11, K)
    assert (batch["audio_labels"][0, :10] == X).all()
    target_labels = batch["audio_labels"][0, 10:].T  # (K, 11)
    for k in range(K):
        expected = [X] * (k + 1) + target[k].tolist() + [1025] + [X] * (K - 1 - k)
        assert target_labels[k].tolist() == expected
    assert ((batch["audio_labels"] == 1025).sum(dim=1) == 1).all(), "exactly one stream-EOS target per codebook"

    # Text labels: only <|audio_eos|><|eot_id|> of the target turn.
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    supervised = labels != X
    assert tok.convert_ids_to_tokens(ids[supervised].tolist()) == ["<|audio_eos|>", "<|eot_id|>"]
    assert (labels[supervised] == ids[supervised]).all()
    # The second <|audio_eos|> of the conversation is the supervised one.
    audio_eos = (ids == tok.convert_tokens_to_ids("<|audio_eos|>")).nonzero().flatten()
    assert supervised[audio_eos].tolist() == [False, True]


def test_rows_are_right_padded_with_ignored_labels(processor, model_config):
    K = model_config.num_codebooks
    short = _hand_built(torch.zeros((K, 1), dtype=torch.long), torch.zeros((K, 1), dtype=torch.long))
    long = _hand_built(torch.zeros((K, 4), dtype=torch.long), torch.zeros((K, 6), dtype=torch.long))
    batch = ConversationCollator(processor.tokenizer, model_config)([short, long])
    n_short = int(batch["attention_mask"][0].sum())
    assert batch["attention_mask"][0, :n_short].all() and not batch["attention_mask"][0, n_short:].any()
    assert (batch["input_ids"][0, n_short:] == processor.tokenizer.pad_token_id).all()
    assert (batch["labels"][0, n_short:] == X).all()
    f_short = int(batch["audio_input_ids_mask"][0].sum())
    assert f_short == 20 and batch["audio_input_ids_mask"][1].sum() == 28
    assert (batch["audio_labels"][0, f_short:] == X).all()


def test_generation_prompt_ends_with_audio_bos_and_keeps_reference_audio(processor, model_config):
    K = model_config.num_codebooks
    row = _hand_built(torch.full((K, 3), 5), torch.full((K, 2), 6))
    prompts = ConversationCollator(processor.tokenizer, model_config).prompts([row])
    text = processor.tokenizer.decode(prompts["input_ids"][0])
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>")
    assert prompts["audio_input_ids"].shape == (1, 3 + 9, K)  # the reference only, not the target
    assert "audio_labels" not in prompts and "labels" not in prompts
