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
    from registry.models import Model

    model = (
        Model.objects.filter(owner__username=match["owner"], name=match["name"], public=True)
        .only("allowed_origins")
        .first()
    )
    origin = request.headers.get("Origin", "")
    # A private model answers CORS like a missing one, so the header tells
    # nobody it exists or which origins it allows; once the request is known
    # to be allowed to read it, registry.serving checks the origin list.
    return model is None or model.allows_origin(origin)
