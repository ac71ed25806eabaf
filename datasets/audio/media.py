"""Decode a media file's audio to 16 kHz mono float32, from a game's start offset on.

Containers: anything FFmpeg reads, through PyAV (``pip install av``: its wheels bundle FFmpeg's
libraries, no ``ffmpeg`` binary needed); PCM WAV also through the standard library, so 16 kHz
WAV needs no PyAV at all. Resampling uses PyAV's ``AudioResampler`` (libswresample) per channel;
channels are then averaged, as the VGGish recipe averages them before resampling (both steps are
linear, so the order does not matter).

Start offsets: SoccerNet's raw broadcasts ``{1,2}_HQ.mkv`` (or ``.mp4``/``.ts``) begin before
kick-off; the game folder's ``video.ini`` (an INI file, as SoccerNet's ``ConvertHQtoLQ.py`` and
``ExtractResNET_TF2.py`` read it with ``configparser``) has one section per video file::

    [1_HQ.mkv]
    start_time_second = 68
    duration_second = 2700

The 224p ``{1,2}.mkv`` were cut from them with ``ffmpeg -ss start -t duration`` and start at
kick-off, so they have no section and no offset; the ResNet features were computed over the same
span. :func:`media_segment` finds a file's section (if any) and :func:`decode_audio` keeps
``[start, start + duration)`` of the media timeline, measured like ``ffmpeg -ss`` from the
container's start time. A file named ``*_HQ.*`` without a section is refused: its features would
be misaligned by a minute or more.

av is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import configparser
import os
import warnings
import wave
from dataclasses import dataclass

import numpy as np

from avspot.datasets.errors import DataError

SAMPLE_RATE = 16000
VIDEO_INI = "video.ini"
MEDIA_EXTENSIONS = (
    ".mkv", ".mp4", ".ts", ".webm", ".mov", ".avi", ".m4a", ".aac", ".mp3", ".ogg", ".opus",
    ".flac", ".wav",
)  # fmt: skip


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


@dataclass(frozen=True)
class Segment:
    """The span of a media file that belongs to the game: ``[start, start + duration)`` s."""

    path: str
    start: float = 0.0
    duration: float | None = None  # None: to the end of the file


def read_video_ini(path: str) -> dict[str, tuple[float, float | None]]:
    """``{video file name: (start_time_second, duration_second or None)}`` of a video.ini."""
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise DataError(f"{path}: cannot read {VIDEO_INI}: {_one_line(exc)}") from None
    out: dict[str, tuple[float, float | None]] = {}
    for section in parser.sections():
        fields = parser[section]
        try:
            start = float(fields.get("start_time_second", "0"))
            raw = fields.get("duration_second")
            duration = float(raw) if raw not in (None, "") else None
        except ValueError as exc:
            raise DataError(f"{path}: [{section}]: {_one_line(exc)}") from None
        if start < 0 or (duration is not None and duration <= 0):
            raise DataError(
                f"{path}: [{section}]: start_time_second {start} / duration_second {duration} "
                "out of range"
            )
        out[section] = (start, duration)
    return out


def media_segment(path: str) -> Segment:
    """The game span of ``path``, from a ``video.ini`` beside it when it has a section for it."""
    ini = os.path.join(os.path.dirname(path), VIDEO_INI)
    name = os.path.basename(path)
    sections = read_video_ini(ini) if os.path.isfile(ini) else {}
    if name in sections:
        start, duration = sections[name]
        return Segment(path, start, duration)
    stem = os.path.splitext(name)[0]
    if stem.endswith("_HQ"):
        where = f"{ini} has no [{name}] section" if os.path.isfile(ini) else f"no {ini}"
        raise DataError(
            f"{path}: a raw SoccerNet broadcast needs its start offset, but {where} "
            "(start_time_second); use the 224p 1.mkv/2.mkv, or add the section"
        )
    return Segment(path)


def _read_wav_stdlib(path: str) -> tuple[np.ndarray, int] | None:
    """(samples (n, channels) float32 in [-1, 1), rate) of a PCM WAV; None if not plain PCM."""
    try:
        with wave.open(path, "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        return None  # e.g. float or WAVE_FORMAT_EXTENSIBLE: let FFmpeg read it
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    elif width == 4:
        x = (np.frombuffer(raw, "<i4") / float(1 << 31)).astype(np.float32)
    else:
        return None
    return x.reshape(-1, channels), rate


def _cut(x: np.ndarray, first_time: float, start: float, duration: float | None, sr: int):
    """Samples of ``[start, start + duration)`` from ``x`` whose sample 0 is at ``first_time``."""
    offset = int(round((start - first_time) * sr))
    # a negative offset: the audio stream begins after the requested start; silence until it does
    x = x[offset:] if offset >= 0 else np.concatenate([np.zeros(-offset, np.float32), x])
    if duration is not None:
        x = x[: int(round(duration * sr))]
    return np.ascontiguousarray(x, dtype=np.float32)


def _decode_pyav(path: str, start: float, duration: float | None, sr: int) -> np.ndarray:
    try:
        import av
    except ImportError:
        raise DataError(
            f"{path}: decoding this file needs PyAV (pip install av), or convert it to 16 kHz WAV"
        ) from None
    if start > 1.0:  # seek to a second early, then cut to the sample by timestamps
        first_time, x = _decode_pyav_from(av, path, start - 1.0, start, duration, sr)
        if first_time is not None and first_time <= start + 1e-3:
            return _cut(x, first_time, start, duration, sr)
        # the demuxer landed after the start (it happens without an index): decode it all
    first_time, x = _decode_pyav_from(av, path, None, start, duration, sr)
    if first_time is None:
        raise DataError(f"{path}: the audio stream holds no samples")
    return _cut(x, first_time, start, duration, sr)


def _decode_pyav_from(
    av, path: str, seek: float | None, start: float, duration: float | None, sr: int
) -> tuple[float | None, np.ndarray]:
    """(time of sample 0 on the media timeline, samples) decoded from ``seek`` (s) or the top."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: cannot open media: {_one_line(exc)}") from None
    with container:
        if not container.streams.audio:
            raise DataError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        origin = container.start_time / 1e6 if container.start_time is not None else 0.0
        if seek is not None:
            try:  # by the audio stream: seeking by the default (video) stream can land late
                container.seek(int((origin + seek) / stream.time_base), stream=stream)
            except av.error.FFmpegError:
                return None, np.zeros(0, np.float32)
        resampler = av.AudioResampler(format="fltp", rate=sr)  # keeps the channel layout
        pieces: list[np.ndarray] = []
        first_time: float | None = None
        have, bad, total = 0, 0, 0
        stop = None if duration is None else start + duration

        def take(frames) -> None:
            nonlocal have
            for out in frames:
                a = out.to_ndarray()  # (channels, n) float32, planar
                pieces.append(a.mean(axis=0) if a.shape[0] > 1 else a[0])
                have += a.shape[1]

        try:
            for packet in container.demux(stream):
                total += 1
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad += 1  # a corrupt packet: skip it, as ffmpeg does
                    continue
                for frame in frames:
                    if first_time is None:
                        t = frame.time
                        first_time = (t - origin) if t is not None else (seek or 0.0)
                    take(resampler.resample(frame))
                if stop is not None and first_time is not None and first_time + have / sr > stop:
                    break
            take(resampler.resample(None))
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: cannot decode audio: {_one_line(exc)}") from None
    if bad:
        if bad > max(10, total // 100):
            raise DataError(f"{path}: {bad} of {total} audio packets are corrupt")
        warnings.warn(f"{path}: skipped {bad} corrupt audio packet(s)", stacklevel=4)
    x = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return first_time, x


def decode_audio(
    path: str,
    *,
    start: float = 0.0,
    duration: float | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` of ``[start, start + duration)`` s of ``path``.

    16 kHz PCM WAV is read by the standard library; everything else (other rates, compressed
    audio, video containers) by PyAV. A bad or unreadable file raises DataError naming it.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: media file not found")
    if start < 0 or (duration is not None and duration <= 0):
        raise DataError(f"{path}: bad span start={start} duration={duration}")
    if path.lower().endswith(".wav"):
        got = _read_wav_stdlib(path)
        if got is not None and got[1] == sample_rate:
            samples, _ = got
            return _cut(samples.mean(axis=1), 0.0, start, duration, sample_rate)
    return _decode_pyav(path, float(start), duration, sample_rate)


def decode_segment(segment: Segment, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """:func:`decode_audio` of a :class:`Segment`."""
    return decode_audio(
        segment.path, start=segment.start, duration=segment.duration, sample_rate=sample_rate
    )


def write_audio(
    path: str,
    samples: np.ndarray,
    sample_rate: int,
    *,
    codec: str | None = None,
    video: bool = False,
) -> None:
    """Encode (n,) or (n, channels) float samples in [-1, 1] to ``path``: tests and benchmarks.

    ``.wav`` without ``codec`` is 16-bit PCM through the standard library; anything else goes
    through PyAV (default codec: AAC; ``video=True`` adds a tiny 2 fps video stream, so the file
    looks like a broadcast).
    """
    x = np.asarray(samples, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x  # (n, channels)
    if path.lower().endswith(".wav") and codec is None:
        pcm = (np.clip(x, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype("<i2")
        with wave.open(path, "wb") as w:
            w.setnchannels(x.shape[1])
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())
        return
    import fractions

    import av

    layout = {1: "mono", 2: "stereo"}[x.shape[1]]
    with av.open(path, "w") as out:
        stream = out.add_stream(codec or "aac", rate=sample_rate, layout=layout)
        fmt = stream.codec_context.format
        step = stream.codec_context.frame_size or 1024
        vstream = None
        if video:
            vstream = out.add_stream("mpeg4", rate=2)
            vstream.width, vstream.height, vstream.pix_fmt = 32, 32, "yuv420p"
        for pos in range(0, len(x), step):
            block = x[pos : pos + step].T  # (channels, k) planar
            if not fmt.is_planar:
                block = block.T.reshape(1, -1)  # (1, k * channels) interleaved
            if fmt.name.startswith("s16"):
                block = (np.clip(block, -1, 1 - 1 / 32768) * 32768).astype(np.int16)
            elif fmt.name.startswith("s32"):
                block = (np.clip(block, -1, 1 - 2**-31) * 2**31).astype(np.int32)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format=fmt.name, layout=layout
            )
            frame.sample_rate = sample_rate
            frame.pts = pos
            frame.time_base = fractions.Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if vstream is not None:
            image = np.zeros((32, 32, 3), np.uint8)
            for i in range(int(len(x) / sample_rate * 2)):
                vframe = av.VideoFrame.from_ndarray(image, format="rgb24")
                vframe.pts = i
                for packet in vstream.encode(vframe):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
