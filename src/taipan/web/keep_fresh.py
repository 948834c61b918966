"""Keep package serving's caches fresh while clients use them.

Package serving answers from memory (``web.repo.app.FastPath``) only while three caches are
current: the credentials (``deps.PrincipalCache``: the revocation log looked at within
REVOCATION_CHECK), the channels (``repo.common.ChannelCache``: CHANNEL_TTL) and the index
publications (``Indexer``: its poll interval). Left alone, the first request after a second without
one looks at the database again on the full path (two thread hops and a few queries, ~4 ms instead
of ~0.8 ms), and almost every conda or rattler run starts after such a pause.

``KeepFresh`` is one daemon thread per server process that, for what was asked for within
``server.keep_fresh_seconds``, has each cache look again when half of its time is spent: the
revocation log (one tiny query), every channel in use (one lookup for all of them), the
publications in use (the indexer's own ``_refresh``, which also publishes what changed), the
channel documents in use (conda's ``channeldata.json``: its partitions' log, and a build when it
moved) and, when one of those changed, the lookups of its files that were being downloaded
(``StoredFiles.fill``, one query). Credentials are not looked up again (the cache holds digests, not
secrets): an entry lasts while used, for ``server.keep_fresh_seconds`` after its last use (at least
a minute; ``deps.PrincipalCache``). Each cache
decides what is due and how to look; this module only says when. The bounds do not change: a change
made in another process is still seen within the same time (an index change of a process of this
machine at once, through the change bell), and one made in this process at once (the caches'
``invalidate``/``clear``/``notify``). When nothing was asked for within that time it
does nothing but wake up.
"""

from __future__ import annotations

import logging
import threading
import time

from taipan.runtime import Runtime
from taipan.web.deps import REVOCATION_CHECK, principal_cache
from taipan.web.repo.common import CHANNEL_TTL, channel_cache
from taipan.web.repo.stored import stored_files

log = logging.getLogger(__name__)

# Each cache is looked at again once this share of its time is spent; the thread wakes often enough
# to be on time for the shortest (REVOCATION_CHECK) even when a wake-up comes late.
DUE_AT = 0.5
WAKE_EVERY = REVOCATION_CHECK / 5
# After a failure (e.g. the database is unreachable), wait this long before trying again.
BACKOFF = 5.0


class KeepFresh:
    """The refresher of one server process's serving caches (see the module docstring)."""

    def __init__(self, rt: Runtime, seconds: float) -> None:
        self.rt, self.seconds = rt, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="keep-fresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(WAKE_EVERY):
            try:
                self.tick()
            except Exception:  # the caches still work without it, at the cost of the full path
                if not failing:
                    log.warning("could not keep the serving caches fresh; retrying every %.0f s", BACKOFF,
                                exc_info=True)
                failing = True
                self._stop.wait(BACKOFF)
            else:
                failing = False

    def tick(self) -> None:
        """One round: look again at what was used within ``seconds`` and is half stale."""
        since = time.monotonic() - self.seconds
        channels = channel_cache(self.rt)
        if channels.used < since:
            return  # no request found a channel in the cache within that time: nothing is in use
        principal_cache(self.rt).keep_fresh(since, REVOCATION_CHECK * DUE_AT)
        served = channels.keep_fresh(self.rt, since, CHANNEL_TTL * DUE_AT)
        self.rt.indexer.keep_fresh(since, self.rt.indexer.poll_interval * DUE_AT, served)
        self.rt.indexer.documents.keep_fresh(since, self.rt.indexer.poll_interval * DUE_AT, served)
        stored_files(self.rt).keep_fresh(self.rt)
