"""Sample-rate conversion of 16-bit mono speech (8 ↔ 16 kHz and the like), with numpy.

Speech models want audio at the rate they were trained at; telephone audio arrives at 8 kHz (G.711) or 16 kHz
(G.722), and a warm-up WAV at whatever rate it was made. Band-limited interpolation: a Hann-windowed sinc
whose cut-off is the lower Nyquist frequency, so going down does not fold the top of the band into speech.
"""

from __future__ import annotations

import numpy as np

_HALF_TAPS = 16  # zero crossings each side of the kernel: enough for speech, cheap on a warm-up WAV


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """int16 samples at `from_rate` → int16 samples at `to_rate`."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    x = np.asarray(samples, dtype=np.float64)
    if from_rate == to_rate or len(x) == 0:
        return np.asarray(samples, dtype=np.int16)
    n_out = int(len(x) * to_rate // from_rate)
    cutoff = min(from_rate, to_rate) / (2 * from_rate)  # in cycles per input sample
    t = np.arange(n_out) * (from_rate / to_rate)  # output instants, in input samples
    width = int(np.ceil(_HALF_TAPS / (2 * cutoff)))
    base = np.floor(t).astype(np.int64)
    out = np.zeros(n_out)
    norm = np.zeros(n_out)
    for k in range(-width + 1, width + 1):
        idx = base + k
        d = t - idx
        w = 2 * cutoff * np.sinc(2 * cutoff * d) * (0.5 + 0.5 * np.cos(np.pi * d / width))
        valid = (idx >= 0) & (idx < len(x))
        out[valid] += w[valid] * x[idx[valid]]
        norm[valid] += w[valid]
    out = np.where(norm > 1e-6, out / np.maximum(norm, 1e-6), 0.0)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """s16le bytes at `from_rate` → s16le bytes at `to_rate`."""
    if from_rate == to_rate:
        return pcm
    return resample(np.frombuffer(pcm, dtype="<i2"), from_rate, to_rate).astype("<i2").tobytes()


__all__ = ["resample", "resample_pcm"]
