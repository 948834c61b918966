"""The plan of a mirror run whose upstream lists few enough files to hold in memory (CRAN, Python):
which file rows to add, update, make active (download first) and remove.

The family's run turns each selected upstream file into a ``Planned`` row (its columns, and whether
the row the channel holds already has the same bytes); the rules around it are shared: a file another
source holds is a conflict, never overwritten; a row with the same bytes keeps its state (an active
file stays active), other rows start passive; rows that must be active, or that lack a sha256 when
the family needs one to serve them, are downloaded; rows the upstream no longer lists are removed.
(A conda run streams instead: ``mirror_sync._Planner``.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, select

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File, utcnow
from taipan.services import mirror_sync as ms
from taipan.services.mirror_runs import MirrorEnv

Item = TypeVar("Item")


@dataclass
class Planned:
    row: dict[str, Any]  # the family's columns: family, name, version, subdir, filename, sha256 ...
    same_bytes: bool  # the row the channel holds has these bytes (False when it holds none)


def plan_files(env: MirrorEnv, m: Mirror, channel: Channel, where: ColumnElement[bool], kept: Iterable[Item],
               ckey_of: Callable[[Item], str], planned: Callable[[Item, Row[Any] | None], Planned], *,
               fetch_unhashed: bool) -> ms.Plan:
    """The plan for ``kept`` against the rows of ``channel`` that ``where`` selects; ``planned(item,
    old row or None)`` gives an item's row; ``fetch_unhashed``: rows without a sha256 are downloaded
    even in passive mode."""
    with env.sessions() as db:
        rows = db.execute(select(File.id, File.ckey, File.subdir, File.mirror_id, File.record, File.state,
                                 File.sha256, File.md5).where(File.channel_id == channel.id, where)).all()
    mine = {r.ckey: r for r in rows if r.mirror_id == m.id}
    others = {r.ckey for r in rows if r.mirror_id != m.id}
    plan = ms.Plan([], [], [], [])
    now = utcnow()
    for item in kept:
        ckey = ckey_of(item)
        if ckey in others:  # uploaded, or another mirror's: never overwritten by this one
            plan.conflicts.append(ckey)
            continue
        old = mine.pop(ckey, None)
        p = planned(item, old)
        state = old.state if old is not None and p.same_bytes else "passive"
        row = {**p.row, "id": old.id if old is not None else ms._new_id(), "channel_id": channel.id,
               "ckey": ckey, "state": state, "mirror_id": m.id, "updated_at": now}
        needs_fetch = (m.mode == "active" or (fetch_unhashed and not row["sha256"])) and state != "active"
        if needs_fetch:
            plan.fetch.append(row)
        if old is None:
            row["created_at"] = now
            plan.add.append(row)
        elif old.record != row["record"] or not p.same_bytes or needs_fetch:
            plan.update.append(row)
    plan.remove = [(r.id, r.subdir, r.ckey.rsplit("/", 1)[-1]) for r in mine.values()]
    return plan

