from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from registry import web

urlpatterns = [
    path("", web.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registry/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("new/", web.create_model, name="model-create"),
    path("", include("accounts.urls")),
    path("<str:owner>/<str:name>/", web.model_detail, name="model-detail"),
    path("<str:owner>/<str:name>/card/", web.edit_card, name="model-card-edit"),
    path("<str:owner>/<str:name>/rows/", web.version_rows, name="model-version-rows"),
    path("<str:owner>/<str:name>/alias-rows/", web.alias_table_rows, name="model-alias-rows"),
    path("<str:owner>/<str:name>/webhooks/", web.create_webhook, name="model-webhook-create"),
    path("<str:owner>/<str:name>/webhooks/<uuid:webhook_id>/delete/", web.webhook_action, name="model-webhook-delete"),
    path(
        "<str:owner>/<str:name>/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/",
        web.webhook_action,
        name="model-webhook-redeliver",
    ),
    path("<str:owner>/<str:name>/links/", web.create_link, name="model-link-create"),
    path("<str:owner>/<str:name>/links/<uuid:link_id>/revoke/", web.revoke_link, name="model-link-revoke"),
]
