"""Speech files: synthesize a WAV with Piper, read any PCM WAV as 16-bit mono at a chosen rate."""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from livekit import rtc

from lkmetrics.errors import UsageError

Pcm16 = npt.NDArray[np.int16]

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE


def synthesize_wav(text: str, path: str | Path, *, voice: Any = None) -> float:
    """Speak TEXT with the Piper voice into a 16-bit mono WAV at PATH; return its seconds."""
    from lkmetrics.local.tts import load_piper, piper_sample_rate

    piper_voice = voice if voice is not None else load_piper()
    rate = piper_sample_rate(piper_voice)
    pcm = b"".join(chunk.audio_int16_bytes for chunk in piper_voice.synthesize(text))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wav_pcm16(out, np.frombuffer(pcm, dtype=np.int16), rate)
    return len(pcm) / 2 / rate


def write_wav_pcm16(path: str | Path, pcm: Pcm16, sample_rate: int, num_channels: int = 1) -> None:
    """Write interleaved PCM16 samples to a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(num_channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())


MIN_RATE, MAX_RATE = 4_000, 192_000  # sane sample rates of a WAV file, in Hz
MAX_CHANNELS = 32


def read_wav_pcm16_mono(path: str | Path, target_rate: int) -> Pcm16:
    """Read a PCM or float WAV (any width, rate and channel count) as int16 mono at TARGET_RATE.

    The RIFF chunks are parsed here rather than by ``wave``, which on Python 3.11 rejects
    WAVE_FORMAT_EXTENSIBLE and float files (what many tools write for 24- and 32-bit audio).
    """
    from lkmetrics.safety import read_bytes

    data = read_bytes(path, "the WAV file", max_bytes=512 * 1024 * 1024)
    tag, channels, rate, width, payload = _parse_riff(data, path)
    samples = _decode(payload, tag, width, path)
    usable = samples.size - samples.size % channels
    frames = samples[:usable].reshape(-1, channels)
    mono = np.clip(np.rint(frames.mean(axis=1)), -32768, 32767).astype(np.int16)
    return resample_pcm16(mono, rate, target_rate)


def _parse_riff(data: bytes, path: str | Path) -> tuple[int, int, int, int, bytes]:
    """Return (format tag, channels, sample rate, bytes per sample, sample bytes) of a WAV."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UsageError(f"{path} is not a WAV file (no RIFF/WAVE header).")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]  # a streamed WAV may claim more than it holds
        if chunk_id == b"fmt " and len(body) >= 16:
            tag, channels, rate, _byte_rate, block_align, _bits = struct.unpack_from(
                "<HHIIHH", body
            )
            if tag == _FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # the sub-format GUID's first field
            if not 1 <= channels <= MAX_CHANNELS or block_align < channels:
                raise UsageError(f"{path} has a broken WAV header ({channels} channels, "
                                 f"{block_align} bytes a frame).")
            if not MIN_RATE <= rate <= MAX_RATE:
                # resampling 1 Hz to 16 kHz would ask for 16,000 times the file in memory
                raise UsageError(f"{path} claims a sample rate of {rate:,} Hz; a WAV file must "
                                 f"be {MIN_RATE // 1000} to {MAX_RATE // 1000} kHz.")
            if block_align // channels not in (1, 2, 3, 4, 8):
                raise UsageError(f"{path} has a broken WAV header ({block_align} bytes a "
                                 f"frame for {channels} channels).")
            fmt = (tag, channels, rate, block_align // channels)
        elif chunk_id == b"data":
            if fmt is None:
                raise UsageError(f"{path} has audio data before its WAV format chunk.")
            if size in (0, 0xFFFFFFFF):  # written to a pipe: the size was never filled in
                body = data[pos + 8 :]
            return (*fmt, body)
        pos += 8 + size + (size & 1)
    raise UsageError(f"{path} has no audio data chunk.")


def _decode(payload: bytes, tag: int, width: int, path: str | Path) -> npt.NDArray[np.float64]:
    """Decode little-endian samples to floats on the int16 scale."""
    usable = len(payload) - len(payload) % width
    raw = payload[:usable]
    if tag == _FORMAT_PCM and width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    if tag == _FORMAT_PCM and width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if tag == _FORMAT_PCM and width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float64) / 256.0
    if tag == _FORMAT_PCM and width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0
    if tag == _FORMAT_FLOAT and width in (4, 8):
        floats = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        return np.clip(floats, -1.0, 1.0) * 32767.0
    raise UsageError(
        f"{path} uses a WAV encoding that is not supported (format 0x{tag:04x}, "
        f"{width * 8}-bit); convert it to PCM, e.g. ffmpeg -i IN -c:a pcm_s16le OUT.wav."
    )


def resample_pcm16(pcm: Pcm16, input_rate: int, output_rate: int) -> Pcm16:
    """Resample mono PCM16 samples with LiveKit's resampler (libsoxr, high quality)."""
    if input_rate == output_rate or not pcm.size:
        return pcm
    resampler = rtc.AudioResampler(
        input_rate, output_rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
    )
    frames = resampler.push(bytearray(pcm.tobytes())) + resampler.flush()
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([np.frombuffer(bytes(f.data), dtype=np.int16) for f in frames])


def frame_to_pcm16_mono(frame: rtc.AudioFrame, sample_rate: int) -> Pcm16:
    """Downmix one LiveKit frame to mono and resample it to SAMPLE_RATE."""
    pcm = np.frombuffer(bytes(frame.data), dtype=np.int16)
    if frame.num_channels > 1:
        usable = pcm.size - pcm.size % frame.num_channels
        stereo = pcm[:usable].reshape(-1, frame.num_channels).astype(np.float64)
        pcm = np.clip(np.rint(stereo.mean(axis=1)), -32768, 32767).astype(np.int16)
    return resample_pcm16(pcm, frame.sample_rate, sample_rate)


def pcm16_to_float32(pcm: Pcm16) -> npt.NDArray[np.float32]:
    """Scale PCM16 samples to float32 in [-1, 1)."""
    scaled: npt.NDArray[np.float32] = pcm.astype(np.float32) / np.float32(32768.0)
    return scaled
