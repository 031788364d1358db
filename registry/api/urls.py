from __future__ import annotations

from django.urls import path

from registry.api import aliases, views

urlpatterns = [
    path("models/", views.ModelList.as_view(), name="api-models"),
    path("models/<str:owner>/<str:name>/", views.ModelDetail.as_view(), name="api-model"),
    path("models/<str:owner>/<str:name>/versions/", views.VersionList.as_view(), name="api-versions"),
    path("models/<str:owner>/<str:name>/versions/<int:number>/", views.VersionDetail.as_view(), name="api-version"),
    path(
        "models/<str:owner>/<str:name>/versions/<int:number>/variants/",
        views.VariantCreate.as_view(),
        name="api-version-variants",
    ),
    path(
        "models/<str:owner>/<str:name>/versions/<int:number>/layers/",
        views.VersionLayers.as_view(),
        name="api-version-layers",
    ),
    path("models/<str:owner>/<str:name>/aliases/", aliases.AliasList.as_view(), name="api-aliases"),
    path("models/<str:owner>/<str:name>/aliases/<str:alias>/", aliases.AliasDetail.as_view(), name="api-alias"),
    path("models/<str:owner>/<str:name>/aliases/<str:alias>/log/", aliases.AliasLog.as_view(), name="api-alias-log"),
    path(
        "models/<str:owner>/<str:name>/aliases/<str:alias>/rollback/",
        aliases.AliasRollback.as_view(),
        name="api-alias-rollback",
    ),
]
