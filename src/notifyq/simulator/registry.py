"""Resources an account creates through the API (Applications, Connect Apps): by SID, by account, in order.

A list goes in creation order, oldest first. Every SID keeps its place after its resource is
deleted, so a page token that names a deleted resource still resumes where it was: a client that
deletes what it reads page by page walks the whole list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from notifyq.simulator.records import Page


class _Owned(Protocol):
    @property
    def sid(self) -> str: ...
    @property
    def account_sid(self) -> str: ...


Res = TypeVar("Res", bound=_Owned)


class Registry(Generic[Res]):
    """Resources of one kind, each owned by one account."""

    def __init__(self) -> None:
        self._by_account: dict[str, dict[str, Res]] = {}
        self._place: dict[str, int] = {}  # SID -> creation order, kept after a delete

    def __len__(self) -> int:
        return sum(len(records) for records in self._by_account.values())

    def __iter__(self) -> Iterator[Res]:
        return (record for records in self._by_account.values() for record in records.values())

    def add(self, record: Res) -> Res:
        """Keep a new resource."""
        self._place[record.sid] = len(self._place)
        self._by_account.setdefault(record.account_sid, {})[record.sid] = record
        return record

    def get(self, account_sid: str, sid: str) -> Res | None:
        """The account's resource with this SID."""
        return self._by_account.get(account_sid, {}).get(sid)

    def remove(self, account_sid: str, sid: str) -> Res | None:
        """Forget the account's resource with this SID; the resource, or None when there was none."""
        return self._by_account.get(account_sid, {}).pop(sid, None)

    def of(self, account_sid: str) -> list[Res]:
        """The account's resources, oldest first."""
        return list(self._by_account.get(account_sid, {}).values())

    def page(
        self, account_sid: str, keep: Callable[[Res], bool], *, page: int, page_size: int, page_token: str | None
    ) -> Page[Res]:
        """One page of the account's resources that ``keep`` accepts (tokens as in ``records.paginate``)."""
        matching = [r for r in self.of(account_sid) if keep(r)]
        start = page * page_size
        if not page_token:
            return Page(matching[start : start + page_size], start, has_next=len(matching) > start + page_size)
        mark = self._place.get(page_token[2:])
        if mark is None or page_token[:2] not in {"PA", "PB"}:
            return Page([], start, has_next=False)
        if page_token.startswith("PB"):
            before = [r for r in matching if self._place[r.sid] < mark]
            return Page(before[-page_size:], start, has_next=True)
        after = [r for r in matching if self._place[r.sid] > mark]
        return Page(after[:page_size], start, has_next=len(after) > page_size)

    def clear(self) -> None:
        """Forget every resource."""
        self._by_account.clear()
        self._place.clear()
