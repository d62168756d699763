"""Concurrent audit appends are group-committed (one transaction for every event waiting
when the writer starts) and still form one unbroken hash chain, each caller getting its
own event back only once it is committed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from core.settings import Settings
from storage import audit
from storage.models import AuditEvent
from storage.stores import Stores, open_stores

WRITERS = 20


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    opened = open_stores(Settings(home=tmp_path / "home"))
    yield opened
    opened.close()


def count_commits(stores: Stores) -> list[int]:
    commits = [0]

    def counted(_connection: object) -> None:
        commits[0] += 1

    event.listen(stores.catalog.engine, "commit", counted)
    return commits


def test_concurrent_appends_share_transactions_and_keep_the_chain(stores: Stores) -> None:
    catalog = stores.catalog
    first_in = threading.Event()
    release = threading.Event()
    original = catalog._append_audit_batch

    def slow_first(batch: list[Any]) -> None:
        # The first writer holds the writer's place until every other event is waiting,
        # so the next writer must take all of them in one transaction.
        if not first_in.is_set():
            first_in.set()
            assert release.wait(30)
        original(batch)

    catalog._append_audit_batch = slow_first  # type: ignore[method-assign]
    commits = count_commits(stores)
    seqs: list[int] = []
    errors: list[BaseException] = []

    def append(number: int) -> None:
        try:
            seqs.append(audit.record(catalog, f"key {number}", "reviewer", "search", {"n": number}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(WRITERS)]
    threads[0].start()
    assert first_in.wait(30)
    for thread in threads[1:]:
        thread.start()
    queue = catalog._audit_queue  # type: ignore[attr-defined]
    for _ in range(3000):  # the other 19 events queue behind the first writer
        with queue.pending_lock:
            if len(queue.pending) == WRITERS - 1:
                break
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(seqs) == list(range(1, WRITERS + 1))  # each caller got its own event
    assert commits[0] <= 3  # the first event, then the other nineteen together
    check = audit.verify_audit(catalog)
    assert (check.ok, check.events) == (True, WRITERS), check


def test_an_error_reaches_every_caller_of_the_batch(stores: Stores) -> None:
    catalog = stores.catalog

    def broken(_previous: AuditEvent | None) -> AuditEvent:
        raise ValueError("no event")

    with pytest.raises(ValueError, match="no event"):
        catalog.append_audit(broken)
    # The log is unharmed and takes the next event.
    assert audit.record(catalog, "key 1", "reviewer", "search", {}) == 1
    assert audit.verify_audit(catalog).ok
