"""The VGGish log-mel front end against an independent numpy computation, and its chunking."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from avspot.datasets.audio import melspec

SR = 16000


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones, a noise burst and a stretch of silence: float32 mono at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
    burst = x[int(0.3 * SR) : int(0.7 * SR)]
    burst += 0.5 * rng.standard_normal(len(burst))
    x[int(1.5 * SR) : int(1.9 * SR)] = 0.0  # silence (when the signal is that long)
    return x.astype(np.float32)


def _reference(x: np.ndarray, frames: int) -> np.ndarray:
    """The recipe written out: per 0.5 s chunk, explicit framing, np.fft.rfft, HTK mel, log."""
    win, hop, nfft, bands = 400, 160, 512, 64
    hann = np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / win) for i in range(win)])
    freqs = np.arange(nfft // 2 + 1) * (SR / 2) / (nfft // 2)

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    centres = np.linspace(mel(125.0), mel(7500.0), bands + 2)
    weights = np.zeros((nfft // 2 + 1, bands))
    for b in range(bands):
        lo, mid, hi = centres[b], centres[b + 1], centres[b + 2]
        for k in range(1, nfft // 2 + 1):  # bin 0 (DC) stays zero
            m = mel(freqs[k])
            if lo < m <= mid:
                weights[k, b] = (m - lo) / (mid - lo)
            elif mid < m < hi:
                weights[k, b] = (hi - m) / (hi - mid)
    n = len(x) // 8000
    out = np.zeros((n, frames, bands))
    for i in range(n):
        chunk = x[i * 8000 : (i + 1) * 8000].astype(np.float64)
        for j in range(frames):
            frame = chunk[j * hop : j * hop + win] * hann
            spectrum = np.abs(np.fft.rfft(frame, nfft))
            out[i, j] = np.log(spectrum @ weights + 0.01)
    return out


@pytest.mark.parametrize("frames", [46, 48])
def test_log_mel_matches_independent_numpy(frames):
    x = _signal(2.3)
    got = melspec.log_mel_chunks(x, frames=frames).numpy()
    ref = _reference(x, frames)
    assert got.shape == (4, frames, 64) and got.dtype == np.float32
    # float32 FFT: a loud frame's quiet bands carry ~1e-4 relative error
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_constants_are_the_recipe():
    assert (melspec.WINDOW_SAMPLES, melspec.HOP_SAMPLES) == (0.025 * SR, 0.010 * SR)
    assert melspec.FFT_LENGTH == 512 and melspec.NUM_BANDS == 64
    assert (melspec.MEL_MIN_HZ, melspec.MEL_MAX_HZ, melspec.LOG_OFFSET) == (125.0, 7500.0, 0.01)
    assert melspec.MAX_FRAMES_PER_CHUNK == 48 and melspec.FRAMES_PER_CHUNK == 46


def test_mel_matrix_shape_dc_and_peaks():
    w = melspec.mel_matrix()
    assert w.shape == (257, 64)
    assert not w[0].any()  # DC dropped, as the recipe does
    assert (w >= 0).all() and w.max() <= 1.0
    peaks = (np.argmax(w, axis=0) * SR / 512).astype(float)
    assert np.all(np.diff(peaks) >= 0) and 100 < peaks[0] < 200 and 7000 < peaks[-1] < 7600


def test_chunk_count_and_partial_tail():
    assert melspec.num_chunks(0) == 0
    assert melspec.num_chunks(7999) == 0
    assert melspec.num_chunks(8000) == 1
    assert melspec.num_chunks(int(20.3 * SR)) == 40
    assert tuple(melspec.log_mel_chunks(np.zeros(7999, np.float32)).shape) == (0, 46, 64)


def test_chunk_i_depends_only_on_its_half_second():
    x = _signal(3.0, seed=1)
    base = melspec.log_mel_chunks(x).numpy()
    y = x.copy()
    y[3 * 8000 : 4 * 8000] += 0.2  # change chunk 3's samples only
    changed = np.abs(melspec.log_mel_chunks(y).numpy() - base).max(axis=(1, 2))
    assert changed[3] > 0.01
    assert np.all(changed[[0, 1, 2, 4, 5]] == 0.0)


def test_edges_of_a_chunk():
    """46 frames read samples [0, 7600) of a chunk; 48 frames reach 7920; none reach 8000."""
    x = _signal(1.0, seed=2)
    for frames, first_unused in ((46, 7600), (48, 7920)):
        base = melspec.log_mel_chunks(x, frames=frames).numpy()
        tail = x.copy()
        tail[first_unused:8000] = 1.0  # the end of chunk 0, past its last frame
        np.testing.assert_array_equal(melspec.log_mel_chunks(tail, frames=frames).numpy(), base)
        used = x.copy()
        used[first_unused - 1] = 1.0
        assert not np.array_equal(melspec.log_mel_chunks(used, frames=frames).numpy(), base)


def test_silence_and_a_tone():
    silent = melspec.log_mel_chunks(np.zeros(8000, np.float32)).numpy()
    np.testing.assert_allclose(silent, np.log(0.01), atol=1e-6)
    t = np.arange(8000) / SR
    tone = melspec.log_mel_chunks((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    band = int(np.argmax(tone.numpy()[0].mean(axis=0)))
    peak_hz = np.argmax(melspec.mel_matrix()[:, band]) * SR / 512
    assert abs(peak_hz - 1000) < 100


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        melspec.log_mel_chunks(np.zeros((2, 8000), np.float32))
    with pytest.raises(ValueError, match="frames"):
        melspec.log_mel_chunks(np.zeros(8000, np.float32), frames=49)


def test_audio_modules_import_light():
    code = (
        "import sys, avspot.datasets.audio.media, avspot.datasets.audio.melspec, avspot.datasets.audio.vggish, "
        "avspot.datasets.audio.extract; "
        "bad = [m for m in ('torch', 'ray', 'av', 'tqdm') if m in sys.modules]; "
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
