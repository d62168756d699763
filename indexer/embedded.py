"""The embedded search engine (default): SQLite FTS5 in the data directory.

Why FTS5 rather than tantivy: it ships inside Python's sqlite3 (nothing to install or
build), its writes are transactional with WAL like the catalog's, and phrase queries
over our own tokens give exactly the semantics we need. Each utterance is indexed as
three token columns:

- ``exact``: overlapping character bigrams of the search form (Simplified, half width,
  digits for numerals, no punctuation), so any run of two or more characters is a phrase;
- ``sound``: toneless, blurred pinyin syllables (:mod:`indexer.phonetic`);
- ``meta``: hashed filter tokens (stream, streamer, product, claim type), so filters are
  intersected inside the full-text index.

Exact hits rank above sound-alike hits; sound-alike hits exclude the exact ones.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from indexer.documents import UtteranceDoc
from indexer.phonetic import sound_tokens
from indexer.protocol import Hit, SearchQuery, SearchResult
from indexer.query import (
    bigrams,
    browsing,
    check_query,
    exact_form,
    highlight,
    mention_highlight,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS utterances (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    stream TEXT NOT NULL,
    segment INTEGER NOT NULL,
    start_ts REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS utterances_segment ON utterances (stream, segment);
CREATE INDEX IF NOT EXISTS utterances_time ON utterances (start_ts);
CREATE VIRTUAL TABLE IF NOT EXISTS utterance_fts USING fts5 (
    exact, sound, meta, tokenize = 'unicode61 remove_diacritics 0'
);
"""


def tag(kind: str, value: str) -> str:
    """A filter token that no tokenizer splits: a letter and a hex digest."""
    return kind + hashlib.sha256(value.encode()).hexdigest()[:16]


def _phrase(tokens: list[str]) -> str:
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


def _timestamp(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


class EmbeddedSearchIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    # -- writes ----------------------------------------------------------------------------
    def replace_segment(self, stream: str, segment: int, docs: Sequence[UtteranceDoc]) -> None:
        with self._transaction():
            self._delete_segment(stream, segment)
            for doc in docs:
                self._insert(doc)

    def bulk_load(self, docs: Sequence[UtteranceDoc]) -> None:
        """Add new documents in one transaction (reindex and benchmarks)."""
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

    def _delete_segment(self, stream: str, segment: int) -> None:
        rows = self._db.execute(
            "SELECT rowid FROM utterances WHERE stream = ? AND segment = ?", (stream, segment)
        ).fetchall()
        for (rowid,) in rows:
            self._db.execute("DELETE FROM utterance_fts WHERE rowid = ?", (rowid,))
            self._db.execute("DELETE FROM utterances WHERE rowid = ?", (rowid,))

    def _insert(self, doc: UtteranceDoc) -> None:
        cursor = self._db.execute(
            "INSERT OR REPLACE INTO utterances (id, stream, segment, start_ts, doc)"
            " VALUES (?, ?, ?, ?, ?)",
            (doc.id, doc.stream, doc.segment, _timestamp(doc.start), json.dumps(doc.as_json())),
        )
        meta = [tag("s", doc.stream)]
        if doc.streamer:
            meta.append(tag("w", doc.streamer))
        meta += [tag("p", m.key) for m in doc.products]
        meta += [tag("c", m.key) for m in doc.claims]
        meta += [tag("b", str(b.get("category", ""))) for b in doc.banned]
        self._db.execute(
            "INSERT OR REPLACE INTO utterance_fts (rowid, exact, sound, meta) VALUES (?, ?, ?, ?)",
            (
                cursor.lastrowid,
                " ".join(bigrams(doc.exact_form)),
                " ".join(doc.sounds),
                " ".join(meta),
            ),
        )

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM utterance_fts")
            self._db.execute("DELETE FROM utterances")

    def count(self, stream: str | None = None) -> int:
        if stream is None:
            row = self._db.execute("SELECT count(*) FROM utterances").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM utterances WHERE stream = ?", (stream,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    # -- reads -----------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        check_query(query)
        if browsing(query):
            return self._browse(query)
        exact = "exact : " + _phrase(bigrams(exact_form(query.text)))
        sounds = sound_tokens(query.text)
        filters = self._filters(query)
        want = query.page * query.size
        exact_match = f"({exact}){filters}"
        hits = self._hits(exact_match, query, "exact", want)
        total = self._count(exact_match, query)
        if query.sound_alike and len(sounds) >= 2:
            sound_match = f"((sound : {_phrase(sounds)}) NOT ({exact})){filters}"
            if len(hits) < want:
                hits += self._hits(sound_match, query, "sound-alike", want - len(hits))
            total += self._count(sound_match, query)
        start = (query.page - 1) * query.size
        return SearchResult(total=total, hits=hits[start : start + query.size])

    def _browse(self, query: SearchQuery) -> SearchResult:
        """Mentions of a claim type or product, in time order (relevance has no meaning)."""
        match = self._filters(query).removeprefix(" AND ")
        rows = self._hits(match, replace(query, sort="time"), "exact", query.page * query.size)
        hits = []
        for hit in rows[(query.page - 1) * query.size :]:
            doc_mentions = self._mentions(hit.id, query)
            kind = "sound-alike" if all(m["match"] != "exact" for m in doc_mentions) else "exact"
            heard = [m["heard"] for m in doc_mentions]
            hits.append(
                replace(hit, match=kind, highlighted=mention_highlight(hit.text, heard))  # type: ignore[arg-type]
            )
        return SearchResult(total=self._count(match, query), hits=hits)

    def _mentions(self, doc_id: str, query: SearchQuery) -> list[dict[str, Any]]:
        (raw,) = self._db.execute("SELECT doc FROM utterances WHERE id = ?", (doc_id,)).fetchone()
        doc = json.loads(raw)
        wanted = [m for m in doc["claims"] if m["key"] == query.claim] if query.claim else []
        wanted += [m for m in doc["products"] if m["key"] == query.product] if query.product else []
        return wanted

    @staticmethod
    def _filters(query: SearchQuery) -> str:
        tokens = []
        if query.stream:
            tokens.append(tag("s", query.stream))
        if query.streamer:
            tokens.append(tag("w", query.streamer))
        if query.product:
            tokens.append(tag("p", query.product))
        if query.claim:
            tokens.append(tag("c", query.claim))
        return "".join(f" AND (meta : {t})" for t in tokens)

    @staticmethod
    def _time_clause(query: SearchQuery) -> tuple[str, list[Any]]:
        clause, args = "", []
        if query.since:
            clause += " AND u.start_ts >= ?"
            args.append(query.since.timestamp())
        if query.until:
            clause += " AND u.start_ts <= ?"
            args.append(query.until.timestamp())
        return clause, args

    # The SQL below is assembled from fixed clauses only; every value is a bound parameter.
    def _count(self, match: str, query: SearchQuery) -> int:
        clause, args = self._time_clause(query)
        if not clause:
            # Inside FTS5 alone: joining every match to its row costs a page read each.
            row = self._db.execute(
                "SELECT count(*) FROM utterance_fts WHERE utterance_fts MATCH ?", (match,)
            ).fetchone()
            return int(row[0])
        sql = (
            "SELECT count(*) FROM utterance_fts f JOIN utterances u ON u.rowid = f.rowid"  # noqa: S608
            f" WHERE utterance_fts MATCH ?{clause}"
        )
        return int(self._db.execute(sql, [match, *args]).fetchone()[0])

    def _hits(self, match: str, query: SearchQuery, kind: str, limit: int) -> list[Hit]:
        clause, args = self._time_clause(query)
        order = "f.rank" if query.sort == "relevance" else "u.start_ts"
        sql = (
            "SELECT u.doc, f.rank FROM utterance_fts f JOIN utterances u ON u.rowid = f.rowid"  # noqa: S608
            f" WHERE utterance_fts MATCH ?{clause} ORDER BY {order} LIMIT ?"
        )
        rows = self._db.execute(sql, [match, *args, limit]).fetchall()
        weight = 1.0 if kind == "exact" else 0.5
        return [self._hit(json.loads(doc), query, kind, -rank * weight) for doc, rank in rows]

    @staticmethod
    def _hit(doc: dict[str, Any], query: SearchQuery, kind: str, score: float) -> Hit:
        return Hit(
            id=doc["id"],
            stream=doc["stream"],
            text=doc["text"],
            highlighted=highlight(doc["text"], query.text, kind),
            match="exact" if kind == "exact" else "sound-alike",
            start=doc["start"],
            offset=doc["offset"],
            end_offset=doc["end_offset"],
            score=round(score, 4),
            segment=doc["segment"],
            products=sorted({m["key"] for m in doc["products"]}),
            claims=sorted({m["key"] for m in doc["claims"]}),
        )
