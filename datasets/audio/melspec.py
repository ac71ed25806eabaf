"""The VGGish log-mel front end, cut into 0.5 s chunks that line up with 2 fps video features.

Parameters are the public VGGish recipe's (tensorflow/models ``research/audioset/vggish``:
``vggish_params.py``, ``mel_features.py``): 16 kHz mono; 25 ms windows (400 samples) every
10 ms (160 samples); a 512-point FFT (the next power of two); a periodic Hann window; the
magnitude (not power) spectrum; 64 triangular mel bands from 125 to 7500 Hz on the HTK mel
scale ``1127 ln(1 + f / 700)`` with the DC bin's weights zeroed; ``log(mel + 0.01)``.

Chunks follow the seed's own extractor (audio-features-extraction in
bastienvanderplaetse/SoccerNetMultimodalActionSpotting, built on DTaoo/VGGish): the waveform is
cut into independent 0.5 s pieces (8000 samples) and each piece is framed on its own. A 0.5 s
piece holds ``1 + (8000 - 400) // 160 = 48`` STFT frames; the seed keeps the first 46
(``NUM_FRAMES = 46``, ``EXAMPLE_WINDOW_SECONDS = 0.46``), so chunk ``i`` is computed from samples
``[8000 i, 8000 i + 7600)``, i.e. ``[0.5 i, 0.5 i + 0.475)`` s.

Edges: no STFT frame crosses a chunk boundary (no centre padding, no overlap into the next
chunk), so chunk ``i`` depends on audio ``[0.5 i, 0.5 (i + 1))`` only and aligns with video frame
``i`` at 2 fps; the chunk's last 25 ms feed no frame with the seed's 46 frames (``frames=48``
uses up to 0.495 s). A trailing piece shorter than 0.5 s makes no chunk: ``N = samples // 8000``,
as the seed's ``int(len(wav) / (0.5 sr))``; the extractor then truncates or edge-pads to the
video's frame count.

torch is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16000  # Hz
CHUNK_SECONDS = 0.5  # one chunk per video frame at 2 fps
CHUNK_SAMPLES = 8000  # SAMPLE_RATE * CHUNK_SECONDS
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_LENGTH = 512  # 2 ** ceil(log2(400))
NUM_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
MAX_FRAMES_PER_CHUNK = 1 + (CHUNK_SAMPLES - WINDOW_SAMPLES) // HOP_SAMPLES  # 48
FRAMES_PER_CHUNK = 46  # the seed's NUM_FRAMES


def num_chunks(num_samples: int) -> int:
    """Number of whole 0.5 s chunks in ``num_samples`` samples at 16 kHz."""
    return max(int(num_samples), 0) // CHUNK_SAMPLES


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as the VGGish recipe: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def periodic_hann(length: int = WINDOW_SAMPLES) -> np.ndarray:
    """Periodic Hann window (the DFT-even one ``0.5 - 0.5 cos(2 pi n / N)``), float64."""
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


@cache
def _mel_matrix(
    num_bands: int, num_bins: int, sample_rate: int, lo: float, hi: float
) -> np.ndarray:
    if not 0.0 <= lo < hi <= sample_rate / 2:
        raise ValueError(f"mel band edges {lo}-{hi} Hz do not fit 0-{sample_rate / 2} Hz")
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_bins))  # (num_bins,)
    edges = np.linspace(hertz_to_mel(lo), hertz_to_mel(hi), num_bands + 2)  # (num_bands + 2,)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (num_bands,) each
    rising = (bins_mel[:, None] - lower) / (centre - lower)  # (num_bins, num_bands)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # the recipe drops the DC bin
    weights.flags.writeable = False
    return weights


def mel_matrix(
    num_bands: int = NUM_BANDS,
    num_bins: int = FFT_LENGTH // 2 + 1,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """(num_bins, num_bands) float64 weights: ``spectrum @ mel_matrix()`` gives mel energies."""
    return _mel_matrix(num_bands, num_bins, sample_rate, float(lower_hz), float(upper_hz))


def log_mel_chunks(
    audio: np.ndarray | torch.Tensor,
    *,
    frames: int = FRAMES_PER_CHUNK,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Log-mel patches of every whole 0.5 s chunk of 16 kHz mono ``audio`` (see module doc).

    Returns a float32 tensor (N, frames, 64) on ``device`` (default: the input's, or CPU),
    N = ``len(audio) // 8000``; frames are STFT frames 0..frames-1 of each chunk.
    """
    import torch

    if not 1 <= frames <= MAX_FRAMES_PER_CHUNK:
        raise ValueError(f"frames={frames}: a 0.5 s chunk holds 1..{MAX_FRAMES_PER_CHUNK}")
    x = torch.as_tensor(audio, dtype=torch.float32, device=device)
    if x.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {tuple(x.shape)}")
    n = num_chunks(x.numel())
    if n == 0:
        return torch.empty((0, frames, NUM_BANDS), dtype=torch.float32, device=x.device)
    pieces = x[: n * CHUNK_SAMPLES].reshape(n, CHUNK_SAMPLES)  # (N, 8000)
    framed = pieces.unfold(1, WINDOW_SAMPLES, HOP_SAMPLES)[:, :frames]  # (N, frames, 400)
    window = torch.tensor(periodic_hann(), dtype=torch.float32, device=x.device)  # (400,)
    # rfft with n=512 zero-pads each 400-sample frame at its end, as np.fft.rfft(frame, 512)
    spectrum = torch.fft.rfft(framed * window, n=FFT_LENGTH).abs()  # (N, frames, 257)
    mel = torch.tensor(mel_matrix(), dtype=torch.float32, device=x.device)  # (257, 64)
    return torch.log(spectrum @ mel + LOG_OFFSET)  # (N, frames, 64)
