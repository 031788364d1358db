from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from registry import serving
from registry.converters import Sha256Converter, VariantConverter

register_converter(VariantConverter, "variant")
register_converter(Sha256Converter, "sha256")

urlpatterns = [
    path("api/v1/", include("registry.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Under /m/-/: no owner can be named "-", so no model's files collide.
    path("m/-/verify.mjs", serving.verify_module, name="verify-module"),
    path("m/<str:owner>/<str:name>/blobs/<sha256:sha256>", serving.serve_blob, name="serve-blob"),
    path("m/<str:owner>/<str:name>/<str:ref>/cut/<str:layer>/model.json", serving.serve_cut, name="serve-cut"),
    path("m/<str:owner>/<str:name>/<str:ref>/<str:filename>", serving.serve_file, name="serve-file"),
    path(
        "m/<str:owner>/<str:name>/<str:ref>/<variant:variant>/<str:filename>",
        serving.serve_variant_file,
        name="serve-variant-file",
    ),
    # Under /-/: no owner (user or organisation) can be named "-", so no model page collides.
    path("-/admin/", admin.site.urls),
    path("", include("registry.urls")),
]

handler400 = "registry.errors.bad_request"
handler404 = "registry.errors.not_found"
handler500 = "registry.errors.server_error"
