from __future__ import annotations

from django.urls import path

from accounts import web

urlpatterns = [
    path("settings/tokens/", web.tokens, name="tokens"),
    path("settings/tokens/<uuid:token_id>/revoke/", web.revoke_token, name="token-revoke"),
    path("orgs/", web.organizations, name="organizations"),
    path("orgs/<str:org>/", web.organization, name="organization"),
    path("orgs/<str:org>/members/", web.member, name="organization-member"),
]
