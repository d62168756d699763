"""The embedded search engine (default): SQLite FTS5 in the data directory.

Why FTS5 rather than tantivy: it ships inside Python's sqlite3 (nothing to install or
build), its writes are transactional with WAL like the catalog's, and phrase queries
over our own tokens give exactly the semantics we need. Each utterance is indexed as
three token columns:

- ``exact``: overlapping character bigrams of the search form (Simplified, half width,
  digits for numerals, no punctuation), so any run of two or more characters is a phrase;
- ``sound``: toneless, blurred pinyin syllables (:mod:`core.phonetic`), as
  overlapping pairs (:func:`sound_pairs`);
- ``meta``: hashed filter tokens (stream, streamer, product, claim type, document kind),
  so filters are intersected inside the full-text index.

Chat, on-screen text and product cards are documents of their own ``kind`` beside the
utterances (speech), with the same tokens in columns of their kind's (``chat_exact``,
``chat_sound``, ...): a kind filter is a column filter, which costs what the phrase's
own matches cost. A kind token in ``meta`` (a doclist as long as the kind is large)
measured 4-6x slower at 200k utterances and as many chat messages, so it serves only
browsing (no text), where the filters are the whole query.

Exact hits rank above sound-alike hits; sound-alike hits exclude the exact ones.

Speed at a million utterances comes from never touching every match of a common phrase:

- Row ids are time keys (start in milliseconds, shifted left by 20 bits, plus a
  disambiguator), so sorting by time and time ranges are row-id order and row-id ranges,
  which FTS5 walks lazily and stops at the page.
- Ranking (bm25) costs a lookup per match, so only the newest ``RANK_WINDOW`` matches are
  ranked (Elasticsearch calls this a rescore window) and later pages follow newest first;
  a page must end inside ``MAX_RESULT_WINDOW``.
- Totals are counted up to ``TOTAL_CAP`` and reported as a lower bound beyond it, as
  Elasticsearch's ``track_total_hits`` does.
- Documents are read only for the hits of the page.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.phonetic import sound_tokens
from indexer.protocol import (
    DOC_KINDS,
    MAX_RESULT_WINDOW,
    TOTAL_CAP,
    DocKind,
    Hit,
    SearchQuery,
    SearchResult,
)
from indexer.query import (
    MentionKind,
    bigrams,
    browsing,
    check_query,
    doc_kind,
    exact_form,
    highlight,
    match_times,
    mention_highlight,
    mention_kind,
    wanted_mentions,
)

# A hit's match as named by how it was found (a text kind, or a browsed mention's kind).
MATCH_KINDS: dict[str, MentionKind] = {
    "exact": "exact",
    "sound-alike": "sound-alike",
    "fuzzy": "fuzzy",
    "inferred": "inferred",
}

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # searching needs no document code (nor what it imports)
    from indexer.documents import UtteranceDoc

SCHEMA_VERSION = 5
SCHEMA = """
CREATE TABLE IF NOT EXISTS utterances (
    rowid INTEGER PRIMARY KEY,  -- time key: see time_key()
    id TEXT NOT NULL UNIQUE,
    stream TEXT NOT NULL,
    segment INTEGER NOT NULL,
    doc TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'speech'
);
CREATE INDEX IF NOT EXISTS utterances_segment ON utterances (stream, segment);
CREATE VIRTUAL TABLE IF NOT EXISTS utterance_fts USING fts5 (
    exact, sound, chat_exact, chat_sound, screen_exact, screen_sound, card_exact, card_sound,
    meta, tokenize = 'unicode61 remove_diacritics 0'
);
"""
# Layout 3 (speech only) is brought up to date in place, its documents kept: the kind
# column added (its rows are speech) and the full-text table copied into the new columns
# (re-tokenizing, not rebuilding documents: a few minutes at a million utterances, once).
UPGRADE_FROM_3 = (
    "ALTER TABLE utterances ADD COLUMN kind TEXT NOT NULL DEFAULT 'speech'",
    "ALTER TABLE utterance_fts RENAME TO utterance_fts_3",
    SCHEMA.split(";\n")[2],
    "INSERT INTO utterance_fts (rowid, exact, sound, meta)"
    " SELECT rowid, exact, sound, meta FROM utterance_fts_3",
    "DROP TABLE utterance_fts_3",
)
KIND_COLUMNS: dict[str, tuple[str, str]] = {
    kind: ("exact", "sound") if kind == "speech" else (f"{kind}_exact", f"{kind}_sound")
    for kind in DOC_KINDS
}
RANK_WINDOW = 200  # the newest matches ranked by bm25 (20 µs each at 1M utterances)
KEY_BITS = 20  # room for a million utterances starting in the same millisecond
KEY_MASK = (1 << KEY_BITS) - 1


def time_key(start: float, doc_id: str) -> int:
    """A row id that sorts by start time (milliseconds), spread within the millisecond."""
    spread = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=4).digest()) & KEY_MASK
    return (int(start * 1000) << KEY_BITS) | spread


def _key_range(query: SearchQuery) -> tuple[int | None, int | None]:
    low = int(query.since.timestamp() * 1000) << KEY_BITS if query.since else None
    high = (int(query.until.timestamp() * 1000) << KEY_BITS) | KEY_MASK if query.until else None
    return low, high


def sound_pairs(sounds: list[str]) -> list[str]:
    """Overlapping syllable pairs as single tokens (zi0bo bo0jian ...): the doclist of a
    pair is far shorter than those of common syllables (de, men), as bigrams are for
    characters, so a sound-alike phrase query walks far less."""
    return [f"{a}0{b}" for a, b in itertools.pairwise(sounds)] if len(sounds) > 1 else sounds


def tag(kind: str, value: str) -> str:
    """A filter token that no tokenizer splits: a letter and a hex digest."""
    return kind + hashlib.sha256(value.encode()).hexdigest()[:16]


NOT_SPEECH = tag("k", "not speech")


def _columns(query: SearchQuery) -> tuple[str, str]:
    """The exact and sound columns a text query searches: its kind's, or every kind's."""
    if query.kind is not None:
        return KIND_COLUMNS[query.kind]
    exact = " ".join(columns[0] for columns in KIND_COLUMNS.values())
    sound = " ".join(columns[1] for columns in KIND_COLUMNS.values())
    return "{" + exact + "}", "{" + sound + "}"


def _phrase(tokens: list[str]) -> str:
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


def _timestamp(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


class EmbeddedSearchIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache (the default is 2): reindexing inserts row ids (time keys)
        # all over the table, and queries at a million utterances reuse the FTS pages.
        self._db.execute("PRAGMA cache_size=-65536")
        self._db.execute("PRAGMA mmap_size=2147483648")  # reads without copying pages
        self._lock = threading.Lock()
        # Searches read on a connection of their own thread's: one connection runs one
        # statement at a time, which made the API's concurrent searches queue.
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        # An index from an older layout is derived data: it is rebuilt by reindex (clear).
        self._outdated = False
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self._db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'utterances'"
            ).fetchone()[0]
            if has_tables and version == 3:
                log.warning("upgrading the search index %s to layout %d", path, SCHEMA_VERSION)
                for statement in UPGRADE_FROM_3:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
            self._outdated = bool(has_tables) and version != SCHEMA_VERSION
            if not self._outdated:
                self._create()

    def _create(self) -> None:
        """Tables and version stamp; the caller holds a write transaction, so a process
        opening the same fresh index never sees tables without their version."""
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_layout(self) -> None:
        if self._outdated:
            raise ConfigError(
                f"the search index {self.path} was built by an older LiveWitness;"
                " rebuild it with: livewitness reindex"
            )

    # -- writes ----------------------------------------------------------------------------
    def replace_segment(
        self, stream: str, segment: int, docs: Sequence[UtteranceDoc], kind: DocKind = "speech"
    ) -> None:
        self._check_layout()
        with self._transaction():
            self._delete_segment(stream, segment, kind)
            for doc in docs:
                self._insert(doc)

    def put_documents(self, docs: Sequence[UtteranceDoc]) -> None:
        self.bulk_load(docs)  # replaces by id

    def bulk_load(self, docs: Sequence[UtteranceDoc]) -> None:
        """Add documents in one transaction (reindex and benchmarks)."""
        self._check_layout()
        with self._transaction():
            for doc in docs:
                self._insert(doc)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _delete_rows(self, rowids: list[int]) -> None:
        self._db.executemany("DELETE FROM utterance_fts WHERE rowid = ?", [(r,) for r in rowids])
        self._db.executemany("DELETE FROM utterances WHERE rowid = ?", [(r,) for r in rowids])

    def _delete_segment(self, stream: str, segment: int, kind: str) -> None:
        rows = self._db.execute(
            "SELECT rowid FROM utterances WHERE stream = ? AND segment = ? AND kind = ?",
            (stream, segment, kind),
        ).fetchall()
        self._delete_rows([r for (r,) in rows])

    def _insert(self, doc: UtteranceDoc) -> None:
        replaced = self._db.execute("SELECT rowid FROM utterances WHERE id = ?", (doc.id,))
        self._delete_rows([r for (r,) in replaced.fetchall()])
        key = time_key(_timestamp(doc.start), doc.id)
        row = (
            doc.id,
            doc.stream,
            doc.segment,
            json.dumps(doc.as_json(), ensure_ascii=False),
            doc.kind,
        )
        for _ in range(1000):
            try:
                self._db.execute(
                    "INSERT INTO utterances (rowid, id, stream, segment, doc, kind)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (key, *row),
                )
                break
            except sqlite3.IntegrityError:
                key += 1  # another utterance began in the same millisecond with this spread
        else:
            raise ConfigError(f"{self.path}: no free row id near {doc.start} for {doc.id}")
        meta = [tag("s", doc.stream)]
        if doc.streamer:
            meta.append(tag("w", doc.streamer))
        meta += [tag("p", m.key) for m in doc.products]
        meta += [tag("c", m.key) for m in doc.claims]
        meta += [tag("b", category) for category in {b["category"] for b in doc.banned}]
        if doc.kind != "speech":
            meta += [tag("k", doc.kind), NOT_SPEECH]
        exact, sound = KIND_COLUMNS.get(doc.kind, KIND_COLUMNS["speech"])
        self._db.execute(
            f"INSERT INTO utterance_fts (rowid, {exact}, {sound}, meta)"  # noqa: S608
            " VALUES (?, ?, ?, ?)",
            (
                key,
                " ".join(bigrams(doc.exact_form)),
                " ".join(sound_pairs(doc.sounds)),
                " ".join(meta),
            ),
        )

    def optimize(self) -> None:
        """Merge the full-text index into one b-tree per term: after a reindex the many
        small segments of bulk writes make every query merge them (2x slower at 1M)."""
        with self._lock:
            self._db.execute("INSERT INTO utterance_fts(utterance_fts) VALUES ('optimize')")

    def clear(self) -> None:
        """Drop everything (and an outdated layout) and start an empty index."""
        with self._transaction():
            self._db.execute("DROP TABLE IF EXISTS utterance_fts")
            self._db.execute("DROP TABLE IF EXISTS utterances")
            self._create()
            self._outdated = False

    def count(self, stream: str | None = None) -> int:
        self._check_layout()
        if stream is None:
            row = self._db.execute("SELECT count(*) FROM utterances").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM utterances WHERE stream = ?", (stream,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            for reader in self._reader_connections:
                reader.close()
            self._reader_connections.clear()
        self._db.close()

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (WAL: readers never wait for the writer)."""
        db: sqlite3.Connection | None = getattr(self._readers, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA query_only=ON")
            db.execute("PRAGMA cache_size=-8192")  # mmap does most reads without the cache
            db.execute("PRAGMA mmap_size=2147483648")
            with self._lock:
                self._reader_connections.append(db)
            self._readers.db = db
        return db

    # -- reads -----------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        check_query(query)
        self._check_layout()
        if browsing(query):
            return self._browse(query)
        exact_columns, sound_columns = _columns(query)
        exact = f"{exact_columns} : " + _phrase(bigrams(exact_form(query.text)))
        sounds = sound_tokens(query.text)
        filters = self._filters(query)
        want = query.page * query.size
        exact_match = f"({exact}){filters}"
        keys, total, capped = self._matches(exact_match, query, want, TOTAL_CAP)
        found = [(key, score, "exact") for key, score in keys]
        # Sound-alike hits follow every exact one: past the result window they cannot
        # show, so they are not looked for (and the total is a lower bound).
        if total >= MAX_RESULT_WINDOW and query.sound_alike and len(sounds) >= 2:
            capped = True
        elif query.sound_alike and len(sounds) >= 2:
            # Filters inside, NOT outside: FTS5 then walks only the filtered sound-alikes
            # (10x faster than filtering "sound NOT exact" at 1M utterances).
            sound = f"{sound_columns} : {_phrase(sound_pairs(sounds))}"
            sound_match = f"(({sound}){filters}) NOT ({exact})"
            more, alike, capped = self._matches(
                sound_match, query, want - len(found), TOTAL_CAP - total
            )
            found += [(key, score / 2, "sound-alike") for key, score in more]
            total += alike
        page = found[(query.page - 1) * query.size :]
        docs = self._docs([key for key, _, _ in page])
        hits = [self._hit(docs[key], query, kind, score) for key, score, kind in page]
        return SearchResult(total=total, hits=hits, total_relation="gte" if capped else "eq")

    def _browse(self, query: SearchQuery) -> SearchResult:
        """Mentions of a claim type or product, in time order (relevance has no meaning)."""
        match = self._filters(query, browsing=True).removeprefix(" AND ")
        keys, total, capped = self._matches(
            match, replace(query, sort="time"), query.page * query.size, TOTAL_CAP
        )
        page = keys[(query.page - 1) * query.size :]
        docs = self._docs([key for key, _ in page])
        hits = []
        for key, score in page:
            doc = docs[key]
            mentions = wanted_mentions(doc, query)
            hit = self._hit(doc, query, mention_kind(mentions), score)
            heard = [m["heard"] for m in mentions]
            hits.append(replace(hit, highlighted=mention_highlight(hit.text, heard)))
        return SearchResult(total=total, hits=hits, total_relation="gte" if capped else "eq")

    @staticmethod
    def _filters(query: SearchQuery, browsing: bool = False) -> str:
        """Filter tokens ANDed to a match; a kind only when browsing (a text search
        filters kinds by column: see _columns)."""
        tokens = []
        if query.stream:
            tokens.append(tag("s", query.stream))
        if query.streamer:
            tokens.append(tag("w", query.streamer))
        if query.product:
            tokens.append(tag("p", query.product))
        if query.claim:
            tokens.append(tag("c", query.claim))
        if query.banned:
            tokens.append(tag("b", query.banned))
        if browsing and query.kind not in (None, "speech"):
            tokens.append(tag("k", query.kind))
        found = "".join(f" AND (meta : {t})" for t in tokens)
        # NOT binds tighter than AND in FTS5: "x AND y NOT z" is "x AND (y NOT z)".
        speech = browsing and query.kind == "speech"
        return found + f" NOT (meta : {NOT_SPEECH})" if speech else found

    @staticmethod
    def _key_clause(low: int | None, high: int | None) -> tuple[str, list[Any]]:
        clause, args = "", []
        if low is not None:
            clause += " AND rowid >= ?"
            args.append(low)
        if high is not None:
            clause += " AND rowid <= ?"
            args.append(high)
        return clause, args

    # The SQL below is assembled from fixed clauses only; every value is a bound parameter.
    def _matches(
        self, match: str, query: SearchQuery, want: int, cap: int
    ) -> tuple[list[tuple[int, float]], int, bool]:
        """The first ``want`` matches in the query's order with their scores, how many
        match (up to ``cap``) and whether more do, in one newest-first walk: its first
        RANK_WINDOW rows carry their bm25 rank, the rest are only counted."""
        low, high = _key_range(query)
        if query.sort == "time":
            window = self._ordered(match, low, high, "rowid", want)
            counted = self._count_below(match, low, high, None, cap + 1)
        else:
            window = self._ordered(match, low, high, "rowid DESC", RANK_WINDOW)
            counted = len(window)
            if counted == RANK_WINDOW and cap + 1 > counted:
                floor = window[-1][0]
                counted += self._count_below(match, low, high, floor, cap + 1 - counted)
            # Best first (the score is -bm25 rank), ties in time order.
            ranked = sorted(window, key=lambda row: (-row[1], row[0]))[:want]
            if len(ranked) < want and counted > len(window):  # past the window: newest first
                older = self._ordered(
                    match, low, window[-1][0] - 1, "rowid DESC", want - len(ranked)
                )
                ranked += older
            window = ranked
        return window, min(counted, cap), counted > cap

    def _count_below(
        self, match: str, low: int | None, high: int | None, below: int | None, limit: int
    ) -> int:
        clause, args = self._key_clause(low, high if below is None else below - 1)
        counted = self._reader().execute(
            "SELECT count(*) FROM (SELECT rowid FROM utterance_fts"  # noqa: S608
            f" WHERE utterance_fts MATCH ?{clause} ORDER BY rowid DESC LIMIT ?)",
            [match, *args, limit],
        )
        row = counted.fetchone()
        return int(row[0])

    def _ordered(
        self, match: str, low: int | None, high: int | None, order: str, limit: int
    ) -> list[tuple[int, float]]:
        clause, args = self._key_clause(low, high)
        found = self._reader().execute(
            f"SELECT rowid, rank FROM utterance_fts WHERE utterance_fts MATCH ?{clause}"  # noqa: S608
            f" ORDER BY {order} LIMIT ?",
            [match, *args, limit],
        )
        rows = found.fetchall()
        return [(key, -rank) for key, rank in rows]

    def _docs(self, keys: list[int]) -> dict[int, dict[str, Any]]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        found = self._reader().execute(
            # With the per-word times: a hit gives the time of its matched words.
            f"SELECT rowid, doc FROM utterances"  # noqa: S608
            f" WHERE rowid IN ({marks})",
            keys,
        )
        rows = found.fetchall()
        return {key: json.loads(doc) for key, doc in rows}

    @staticmethod
    def _hit(doc: dict[str, Any], query: SearchQuery, kind: str, score: float) -> Hit:
        match_offset, match_end_offset = match_times(doc, query, kind)
        return Hit(
            id=doc["id"],
            stream=doc["stream"],
            text=doc["text"],
            highlighted=highlight(doc["text"], query.text, kind),
            match=MATCH_KINDS.get(kind, "sound-alike"),
            start=doc["start"],
            offset=doc["offset"],
            end_offset=doc["end_offset"],
            score=round(score, 4),
            segment=doc["segment"],
            products=sorted({m["key"] for m in doc["products"]}),
            claims=sorted({m["key"] for m in doc["claims"]}),
            banned=sorted({b["category"] for b in doc.get("banned", [])}),
            match_offset=match_offset,
            match_end_offset=match_end_offset,
            kind=doc_kind(doc),
        )
