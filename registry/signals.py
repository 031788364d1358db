from __future__ import annotations

import re

from corsheaders.signals import check_request_enabled
from django.dispatch import receiver

MODEL_PATH = re.compile(r"^/m/(?P<owner>[^/]+)/(?P<name>[^/]+)/")


@receiver(check_request_enabled)
def allow_model_files_from_their_origins(sender, request, **kwargs) -> bool:
    """The API and model files under /m/ are meant to be loaded by browser apps on any
    origin, unless the model's owner restricted it to some origins. Access
    to private models is decided by token or access link, not by Origin."""
    if request.path.startswith(("/m/-/", "/api/")):
        # Modelport's own module, and the API: no cookie is sent or honoured
        # cross-origin (no credentials), so any page may call it with a token,
        # e.g. to save a model trained in the page with tf.io.http.
        return True
    match = MODEL_PATH.match(request.path)
    if not match:
        return False
    from registry.serving import named_model

    model = named_model(request, match["owner"], match["name"])
    origin = request.headers.get("Origin", "")
    # A private model answers CORS like a missing one, so the header tells
    # nobody it exists or which origins it allows; once the request is known
    # to be allowed to read it, registry.serving checks the origin list.
    return model is None or not model.public or model.allows_origin(origin)


def _connect_read_generation() -> None:
    """Every write that can change what /m/ answers starts a new read
    generation (registry/readcache.py)."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

    from accounts.models import AccessToken, Membership, Organization
    from registry import readcache
    from registry.models import AccessLink, Alias, AliasMove, Blob, Model, Version

    forget = readcache.forget_after_commit
    senders = (Model, Version, Alias, AliasMove, Blob, AccessLink, AccessToken, Membership, Organization)
    for sender in (*senders, get_user_model()):
        post_save.connect(forget, sender=sender, dispatch_uid=f"readcache-save-{sender.__name__}")
        post_delete.connect(forget, sender=sender, dispatch_uid=f"readcache-delete-{sender.__name__}")
    m2m_changed.connect(forget, sender=AccessToken.limited_models.through, dispatch_uid="readcache-token-models")
    # Data migrations write through historical models, which send these signals to nobody.
    post_migrate.connect(forget, dispatch_uid="readcache-migrate")


_connect_read_generation()
