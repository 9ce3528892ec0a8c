import torch

from higgs_train.data.delay_pattern import (
    codes_from_generation,
    delayed_audio_ids,
    delayed_audio_labels,
    revert_delay,
)

BOS, EOS, X = 1024, 1025, -100


def test_delayed_ids_and_labels_of_a_two_frame_clip_with_three_codebooks():
    codes = torch.tensor([[1, 2], [3, 4], [5, 6]])
    assert delayed_audio_ids(codes, BOS, EOS).tolist() == [
        [BOS, 1, 2, EOS, EOS, EOS],
        [BOS, BOS, 3, 4, EOS, EOS],
        [BOS, BOS, BOS, 5, 6, EOS],
    ]
    # Every code is a target, each codebook has exactly one stream-EOS target; BOS and delay padding are ignored.
    assert delayed_audio_labels(codes, EOS).tolist() == [
        [X, 1, 2, EOS, X, X],
        [X, X, 3, 4, EOS, X],
        [X, X, X, 5, 6, EOS],
    ]


def test_revert_undoes_delay():
    codes = torch.randint(0, 1024, (8, 13), generator=torch.Generator().manual_seed(0))
    delayed = delayed_audio_ids(codes, BOS, EOS)
    assert delayed.shape == (8, 13 + 9)
    assert torch.equal(revert_delay(delayed)[:, 1:-1], codes)


def test_codes_from_generation_drops_markers_and_reports_stop():
    codes = torch.randint(0, 1024, (8, 5), generator=torch.Generator().manual_seed(1))
    generated = delayed_audio_ids(codes, BOS, EOS).T  # (frames, K) as generate returns them
    recovered, stopped = codes_from_generation(generated, BOS, EOS)
    assert stopped and torch.equal(recovered, codes)

    unfinished = generated[:-3]  # the last codebooks never drained to EOS
    recovered, stopped = codes_from_generation(unfinished, BOS, EOS)
    assert not stopped and torch.equal(recovered, codes[:, : recovered.shape[1]])
