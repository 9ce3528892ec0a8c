"""The delay pattern of HIGGS_FORMAT.md, in both directions, and the labels that teach the model to stop.

Codebook k of a clip is shifted right by k frames. A clip of T frames becomes T + 2 frames with its stream-BOS and
stream-EOS frames, then T + 2 + (K - 1) frames once delayed (K codebooks).
"""

from __future__ import annotations

import torch

from higgs_train.model.loss import IGNORE_INDEX


def delayed_length(code_frames: int, num_codebooks: int) -> int:
    """Audio positions of a clip of `code_frames` frames: its frames + the stream-BOS and stream-EOS frames, + the
    K - 1 frames the last codebook is delayed by."""
    return code_frames + 2 + num_codebooks - 1


def delay(frames: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(K, N) -> (K, N + K - 1): codebook k starts k frames late; `before` fills its first k, `after` its tail."""
    num_codebooks, length = frames.shape
    out = frames.new_full((num_codebooks, length + num_codebooks - 1), after)
    for k in range(num_codebooks):
        out[k, :k] = before
        out[k, k : k + length] = frames[k]
    return out


def revert_delay(delayed: torch.Tensor) -> torch.Tensor:
    """(K, M) -> (K, M - K + 1): undo `delay`."""
    num_codebooks, length = delayed.shape
    frames = length - num_codebooks + 1
    return torch.stack([delayed[k, k : k + frames] for k in range(num_codebooks)])


def delayed_audio_ids(codes: torch.Tensor, stream_bos: int, stream_eos: int) -> torch.Tensor:
    """Model input ids of one clip, (K, T) -> (K, T + K + 1): BOS frame + codes + EOS frame, delayed."""
    bos = codes.new_full((codes.shape[0], 1), stream_bos)
    eos = codes.new_full((codes.shape[0], 1), stream_eos)
    return delay(torch.cat([bos, codes, eos], dim=1), before=stream_bos, after=stream_eos)


def delayed_audio_labels(codes: torch.Tensor, stream_eos: int, stops: bool = True) -> torch.Tensor:
    """Targets of a supervised clip, aligned with `delayed_audio_ids`.

    Every code is a target and every codebook gets exactly one stream-EOS target, right after its last code, so the
    model learns when to stop; the BOS frame, the delay padding and what follows each EOS are ignored. A clip that
    does not stop (`stops=False`: a generated sample cut at the token limit) has its codes as targets and no EOS.
    """
    ignore = codes.new_full((codes.shape[0], 1), IGNORE_INDEX)
    end = codes.new_full((codes.shape[0], 1), stream_eos if stops else IGNORE_INDEX)
    return delay(torch.cat([ignore, codes, end], dim=1), before=IGNORE_INDEX, after=IGNORE_INDEX)


def codes_from_generation(delayed: torch.Tensor, stream_bos: int, stream_eos: int) -> tuple[torch.Tensor, bool]:
    """Generated delayed frames (M, K) starting at the BOS frame -> ((K, T) codes, whether the model stopped).

    The model has stopped once a frame is all stream-EOS (the last codebook's EOS has drained). The BOS and EOS frames
    are dropped rather than clipped into the codebook, which would add an audible tail.
    """
    num_codebooks = delayed.shape[1]
    all_eos = (delayed == stream_eos).all(dim=1).nonzero()
    stopped = len(all_eos) > 0
    end = int(all_eos[0]) + 1 if stopped else delayed.shape[0]
    if end < num_codebooks:
        return delayed.new_zeros((num_codebooks, 0)), stopped
    frames = revert_delay(delayed[:end].T)
    frames = frames[:, 1:]  # the stream-BOS frame
    if stopped:
        frames = frames[:, :-1]  # the stream-EOS frame
    valid = ((frames != stream_bos) & (frames != stream_eos)).all(dim=0)
    first_invalid = (~valid).nonzero()
    if len(first_invalid) > 0:
        frames = frames[:, : int(first_invalid[0])]
    return frames, stopped
