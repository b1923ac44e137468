"""The inputs every section shares: generated speech-like clips and their 2048-sample frames."""

from __future__ import annotations


def speech_like_clips(n_clips: int, seconds: float = 2.5, seed: int = 0) -> list:
    """Voiced harmonics with a gliding pitch and formant-like emphasis, noise bursts and pauses: 22,050 Hz float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    length = int(seconds * 22_050)
    time_axis = np.arange(length) / 22_050
    clips = []
    for _ in range(n_clips):
        f0 = rng.uniform(90, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * time_axis))
        phase = 2 * np.pi * np.cumsum(f0) / 22_050
        formants = rng.uniform([300, 900, 2200], [900, 2200, 3500])
        voiced = sum(
            np.sin(k * phase) * sum(np.exp(-(((k * f0) - f) ** 2) / (2 * 150.0**2)) for f in formants) / k**0.5
            for k in range(1, 40)
        )
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(1, 4) * time_axis + rng.uniform(0, 6)), 0, None) ** 0.5
        noise = rng.standard_normal(length) * (rng.uniform(size=length // 512 + 1).repeat(512)[:length] > 0.8)
        signal = 0.3 * voiced * envelope + 0.02 * noise
        clips.append((signal / max(1e-9, np.abs(signal).max()) * rng.uniform(0.05, 0.9)).astype(np.float32))
    return clips


def clip_frames(clips: list):
    """Every clip's 2048-sample frames (hop 512, center=False) as one contiguous float32 tensor (B, 2048)."""
    import torch

    return torch.cat([torch.from_numpy(clip).unfold(0, 2048, 512) for clip in clips]).contiguous()
