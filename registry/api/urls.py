from __future__ import annotations

from django.urls import path

from accounts import api as accounts
from registry.api import aliases, links, views
from webhooks import api as webhooks

urlpatterns = [
    path("tokens/", accounts.TokenList.as_view(), name="api-tokens"),
    path("tokens/<uuid:token_id>/", accounts.TokenDetail.as_view(), name="api-token"),
    path("orgs/", accounts.OrganizationList.as_view(), name="api-orgs"),
    path("orgs/<str:org>/", accounts.OrganizationDetail.as_view(), name="api-org"),
    path("orgs/<str:org>/members/<str:username>/", accounts.MemberDetail.as_view(), name="api-org-member"),
    path("orgs/<str:org>/audit/", accounts.OrganizationAudit.as_view(), name="api-org-audit"),
    path("audit/", accounts.AccountAudit.as_view(), name="api-audit"),
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
    path(
        "models/<str:owner>/<str:name>/versions/<int:number>/summary/",
        views.VersionSummary.as_view(),
        name="api-version-summary",
    ),
    path("models/<str:owner>/<str:name>/access-links/", links.AccessLinkList.as_view(), name="api-access-links"),
    path(
        "models/<str:owner>/<str:name>/access-links/<uuid:link_id>/",
        links.AccessLinkDetail.as_view(),
        name="api-access-link",
    ),
    path("models/<str:owner>/<str:name>/audit/", links.ModelAudit.as_view(), name="api-model-audit"),
    path("models/<str:owner>/<str:name>/aliases/", aliases.AliasList.as_view(), name="api-aliases"),
    path("models/<str:owner>/<str:name>/aliases/<str:alias>/", aliases.AliasDetail.as_view(), name="api-alias"),
    path("models/<str:owner>/<str:name>/aliases/<str:alias>/log/", aliases.AliasLog.as_view(), name="api-alias-log"),
    path(
        "models/<str:owner>/<str:name>/aliases/<str:alias>/rollback/",
        aliases.AliasRollback.as_view(),
        name="api-alias-rollback",
    ),
]

# Webhooks of a model and of an organisation share their views.
for prefix, label in (("models/<str:owner>/<str:name>/", "model"), ("orgs/<str:org>/", "org")):
    urlpatterns += [
        path(f"{prefix}webhooks/", webhooks.WebhookList.as_view(), name=f"api-{label}-webhooks"),
        path(f"{prefix}webhooks/<uuid:webhook_id>/", webhooks.WebhookDetail.as_view(), name=f"api-{label}-webhook"),
        path(
            f"{prefix}webhooks/<uuid:webhook_id>/deliveries/",
            webhooks.DeliveryList.as_view(),
            name=f"api-{label}-webhook-deliveries",
        ),
        path(
            f"{prefix}webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/",
            webhooks.Redeliver.as_view(),
            name=f"api-{label}-webhook-redeliver",
        ),
    ]
