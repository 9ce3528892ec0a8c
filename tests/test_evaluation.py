"""Evaluation that listens: validation loss/accuracy, sample metrics on hand-made codes, wavs logged to the trackers,
and optional judges that are skipped with a notice when their model cannot be loaded."""

import glob
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate import Accelerator
from omegaconf import OmegaConf
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.conversations import DataError, load_rows
from higgs_train.data.delay_pattern import codes_from_generation, delayed_audio_ids
from higgs_train.data.task_data import TaskDataset
from higgs_train.evaluate.judges import AsrJudge, SpeakerJudge, word_error_rate
from higgs_train.evaluate.metrics import summarize
from higgs_train.evaluate.sample_metrics import duration_ratio, expected_frames_from_text, silent_share
from higgs_train.evaluate.validation import validation_metrics
from higgs_train.model.loss import audio_loss_terms
from higgs_train.runtime.logs import ToolFormatter
from higgs_train.train.recipe import train

BOS, EOS = 1024, 1025


def _generated(codes: torch.Tensor, drop_last: int = 0) -> torch.Tensor:
    """What generation returns for these codes, (M, K) from the BOS frame on; `drop_last` frames cut off the end."""
    delayed = delayed_audio_ids(codes, BOS, EOS).T
    return delayed[: len(delayed) - drop_last]


def test_stop_rate_and_duration_ratio_on_hand_made_code_sequences():
    codes = torch.randint(0, 1024, (8, 10), generator=torch.Generator().manual_seed(0))
    stopped_codes, stopped = codes_from_generation(_generated(codes), BOS, EOS)
    assert stopped and torch.equal(stopped_codes, codes)
    # The last codebook's stream-EOS never came: still speaking when max_new_tokens ran out.
    running_codes, running = codes_from_generation(_generated(codes, drop_last=1), BOS, EOS)
    assert not running and torch.equal(running_codes, codes)
    short_codes, short_stopped = codes_from_generation(_generated(codes[:, :5]), BOS, EOS)
    records = [
        {"stopped": stopped, "duration_ratio": duration_ratio(stopped_codes.shape[1], 10)},
        {"stopped": running, "duration_ratio": duration_ratio(running_codes.shape[1], 10)},
        {"stopped": short_stopped, "duration_ratio": duration_ratio(short_codes.shape[1], 10)},
        {"stopped": False, "duration_ratio": duration_ratio(0, 10)},
    ]
    assert [r["duration_ratio"] for r in records] == [1.0, 1.0, 0.5, 0.0]
    assert summarize(records) == {"stop_rate": 0.5, "duration_ratio": 0.625}


def test_expected_length_of_a_transcript_and_silent_share():
    # 12 spoken characters at 15 chars/s and 25 frames/s; speaker tags and repeated spaces do not count.
    assert expected_frames_from_text("[SPEAKER0]  Hello  world.", 25, 15) == pytest.approx(12 / 15 * 25)
    tone = 0.3 * np.sin(np.arange(960 * 3) / 24000 * 2 * np.pi * 220)
    waveform = np.concatenate([np.zeros(960), tone, np.full(960, 1e-4)]).astype(np.float32)  # 5 frames, 2 silent
    assert silent_share(waveform, 960, -40) == pytest.approx(2 / 5)
    assert silent_share(np.zeros(0, dtype=np.float32), 960, -40) == 1.0


def test_word_error_rate_ignores_case_punctuation_and_speaker_tags():
    assert word_error_rate("[SPEAKER0] Hello, world!", "hello world") == 0.0
    assert word_error_rate("[SPEAKER0] Hello, world!", "hello word") == 0.5


def _rows_of_split(num_rows, size, seed):
    """(training, held-out) table rows of `TaskDataset.split` over `num_rows` conversations."""
    conversations = TaskDataset(None, "smart_voice", np.arange(num_rows), np.full(num_rows, -1), np.zeros(num_rows))
    return tuple(part.rows.tolist() for part in conversations.split(size, seed))


def test_validation_split_is_reproducible_disjoint_and_never_everything():
    train_rows, held_out = _rows_of_split(10, 3, seed=7)
    assert (train_rows, held_out) == _rows_of_split(10, 3, seed=7)
    assert len(held_out) == 3 and sorted(train_rows + held_out) == list(range(10))
    assert held_out == sorted(held_out) and train_rows == sorted(train_rows)
    assert _rows_of_split(10, 0, seed=7) == (list(range(10)), [])
    with pytest.raises(DataError, match="eval.val_size=10 would hold out all 10"):
        _rows_of_split(10, 10, seed=7)


def test_validation_metrics_do_not_depend_on_the_batch_size(tiny_checkpoint, processor, model_config, demo_rows):
    rows = [dict(r) for r in demo_rows[:5]]
    attach_codes(rows, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, model_config)
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint)
    accelerator = Accelerator(cpu=True)
    by_one = validation_metrics(accelerator, model, [collator([r]) for r in rows], model_config)
    by_five = validation_metrics(accelerator, model, [collator(rows)], model_config)
    assert by_one["val_loss"] == pytest.approx(by_five["val_loss"], rel=1e-5)
    assert by_one["val_accuracy_per_codebook"] == pytest.approx(by_five["val_accuracy_per_codebook"], abs=1e-6)
    # The same numbers as the training loss formula over the whole split at once.
    with torch.no_grad():
        terms = audio_loss_terms(model, collator(rows), model_config, with_accuracy=True)
    assert by_five["val_loss_per_codebook"] == pytest.approx((terms.sums / terms.counts).tolist(), rel=1e-5)
    assert by_five["val_accuracy_per_codebook"] == pytest.approx((terms.correct / terms.counts).tolist())


@pytest.mark.slow  # an end-to-end training run
@pytest.mark.parametrize("logger", [["logger=tensorboard"], ["logger=wandb", "logger.mode=offline"]],
                         ids=["tensorboard", "wandb"])
def test_eval_loop_writes_wavs_and_logs_them_to_the_tracker(logger, compose_config, tmp_path, demo_dir):
    run_dir = tmp_path / "run"
    summary = train(compose_config("recipe=smoke", "trainer.max_steps=4", "eval.every_n_steps=2",
                                   "eval.max_new_tokens=30", "trainer.save_every_n_steps=null", *logger), run_dir)
    evaluations = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evaluations] == [2, 4]
    for evaluation in evaluations:
        assert len(evaluation["val_loss_per_codebook"]) == 8 and len(evaluation["val_accuracy_per_codebook"]) == 8
        assert 0 <= evaluation["stop_rate"] <= 1 and evaluation["duration_ratio"] > 0
        ids = [s["id"] for s in evaluation["samples"]]
        assert len(ids) == 2 and all("target_frames" in s for s in evaluation["samples"])
        for sample in evaluation["samples"]:
            assert sf.info(sample["path"]).samplerate == 24000
            assert sample["path"].endswith(f"samples/step_{evaluation['step']}/{sample['id']}.wav")
    assert summary["val_loss"] == evaluations[-1]["val_loss"] and len(summary["samples"]) == 2
    rows = load_rows(demo_dir / "train.jsonl")
    _, held_out = _rows_of_split(len(rows), 4, seed=0)
    assert ids == [rows[i]["id"] for i in held_out[:2]], "samples come from the held-out split, never from training"
    if logger[0] == "logger=tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(run_dir / "higgs-train"), size_guidance={"audio": 0})
        events.Reload()
        assert sorted(events.Tags()["audio"]) == sorted(f"samples/{i}" for i in ids)
        assert [e.step for e in events.Audio(f"samples/{ids[0]}")] == [2, 4]
        assert [e.step for e in events.Scalars("eval/val_loss")] == [2, 4]
    else:
        logged = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "files" / "media" / "audio" / "samples" / "*"))
        assert len(logged) == 4 and all(sf.info(path).samplerate == 24000 for path in logged)


def test_a_judge_that_cannot_be_loaded_is_skipped_with_one_notice(caplog):
    caplog.set_level("INFO", logger="higgs_train")
    assert AsrJudge.load("nobody/no-such-asr") is None
    assert SpeakerJudge.load("nobody/no-such-verifier") is None
    said = [ToolFormatter().format(record) for record in caplog.records]
    assert len(said) == 2 and said[0].startswith("higgs-train: notice: eval.asr_model=nobody/no-such-asr cannot be")
    assert said[1].endswith("speaker similarity not measured")


def test_speaker_similarity_with_a_local_verifier(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    config = WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, tdnn_dim=(16, 16), tdnn_kernel=(3, 1),
                         tdnn_dilation=(1, 1), xvector_output_dim=8, num_buckets=16, max_bucket_distance=50)
    WavLMForXVector(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path)
    judge = SpeakerJudge.load(str(tmp_path))
    assert judge is not None
    noise = (0.1 * np.random.RandomState(0).randn(24000)).astype(np.float32)
    tone = (0.3 * np.sin(np.arange(24000) / 24000 * 2 * np.pi * 220)).astype(np.float32)
    assert judge(noise, noise) == pytest.approx(1.0, abs=1e-5)
    assert judge(noise, tone) < 0.99


@pytest.mark.slow  # an end-to-end training run
def test_no_split_and_no_samples_means_no_evaluation_line(compose_config, tmp_path, demo_dir):
    summary = train(compose_config("recipe=smoke", "trainer.max_steps=2", "eval.val_size=0", "eval.num_samples=0",
                                   "trainer.save_every_n_steps=null"), tmp_path / "run")
    assert not (tmp_path / "run" / "eval.jsonl").exists()
    assert summary["samples"] == [] and "val_loss" not in summary and "stop_rate" not in summary


def test_word_error_rate_with_a_local_asr_checkpoint(tmp_path):
    """A tiny random CTC model saved here loads through the same pipeline a Whisper checkpoint does: the metric is
    measured (whatever the random model hears), and is no longer 'not measured'."""
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    from higgs_train.evaluate.judges import Judges
    from higgs_train.evaluate.metrics import Sample, measure, not_measured

    vocab = {c: i for i, c in enumerate(["<pad>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"])}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|").save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(tmp_path)
    judges = Judges.load(OmegaConf.create({"asr_model": str(tmp_path), "speaker_model": None, "language": "en"}))
    assert judges.asr is not None and "wer" not in not_measured(judges)
    tone = (0.3 * np.sin(np.arange(24000) / 24000 * 2 * np.pi * 220)).astype(np.float32)
    record = measure(Sample(codes=torch.zeros((8, 25), dtype=torch.long), stopped=True, waveform=tone,
                            text="Hello there.", expected_frames=25, frame_rate=25), judges)
    assert record["wer_words"] == 2 and isinstance(record["transcript"], str) and record["wer"] >= 0
