"""Download counts: one per load of a version's model.json (a served 200 or a
304 revalidation), the way Hugging Face counts one file per load. No address
or other trace of who loaded it is kept: only a count per version and day.

Counting never waits on the database: a request adds one to a counter in
this process's memory; a background thread writes the sums every
DOWNLOAD_FLUSH_SECONDS (and at exit). A process killed outright loses at
most that many seconds of counts.

Behind the production nginx front, which answers numbered model.json URLs
from its cache, the front counts instead: it logs one line per model.json
it answers (registry/download_log.py reads them) and tells the app so
(``X-Modelport-Counted-By-Front``), so no load is counted twice or missed.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from datetime import date

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F, Sum
from django.utils import timezone

from registry.models import DownloadDay

logger = logging.getLogger(__name__)

_pending: Counter[tuple[int, date]] = Counter()
_lock = threading.Lock()
_flusher: threading.Thread | None = None


def counted_by_front(request) -> bool:
    """The nginx front logs this load itself (deploy/nginx.conf); trusted only
    when the deployment says a counting front is in place."""
    return settings.DOWNLOADS_COUNTED_BY_FRONT and request.headers.get("X-Modelport-Counted-By-Front") == "1"


def count(version_id: int) -> None:
    global _flusher
    with _lock:
        _pending[(version_id, timezone.now().date())] += 1
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_forever, name="download-counts", daemon=True)
            _flusher.start()


def flush() -> int:
    """Write the counts gathered so far; returns how many loads were written."""
    with _lock:
        batch = dict(_pending)
        _pending.clear()
    return add(batch)


def add(batch: dict[tuple[int, date], int]) -> int:
    """Add loads per (version id, day) to the stored counts."""
    for (version_id, day), loads in batch.items():
        try:
            with transaction.atomic():
                if not DownloadDay.objects.filter(version_id=version_id, day=day).update(count=F("count") + loads):
                    DownloadDay.objects.create(version_id=version_id, day=day, count=loads)
        except IntegrityError:  # another process created the row first, or the version is gone
            DownloadDay.objects.filter(version_id=version_id, day=day).update(count=F("count") + loads)
    return sum(batch.values())


def _flush_forever() -> None:
    while True:
        threading.Event().wait(settings.DOWNLOAD_FLUSH_SECONDS)
        try:
            flush()
        except Exception:
            logger.exception("could not write download counts")
        finally:
            close_old_connections()


@atexit.register
def _flush_at_exit() -> None:
    if _pending:
        try:
            flush()
        except Exception:
            logger.exception("could not write download counts at exit")


def totals(version_ids: list[int]) -> dict[int, int]:
    """Loads in the last 30 days, per version."""
    rows = DownloadDay.objects.filter(version_id__in=version_ids, day__gte=DownloadDay.window_start()).values(
        "version_id"
    )
    return {row["version_id"]: row["n"] for row in rows.annotate(n=Sum("count"))}
