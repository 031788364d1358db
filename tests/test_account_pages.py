"""The web pages for tokens, organisations, access links and the audit log,
as each persona sees them."""

from __future__ import annotations

import re

import pytest

from accounts.models import AccessToken, Membership
from registry.models import AccessLink, Model
from tests.org_fixtures import PERSONAS

pytestmark = pytest.mark.django_db


def signed_in(client, user):
    if user is not None:
        client.force_login(user)
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_tokens_page_shows_a_new_token_once_and_lists_it_without_the_secret(client, owner, acme):
    page = signed_in(client, owner)
    response = page.post(
        "/settings/tokens/", {"name": "CI", "scope": "read", "organization": "acme", "expires_in_days": "30"}
    )
    key = re.search(r"mp_[0-9a-f]{64}", response.content.decode())[0]
    token = AccessToken.objects.get()
    assert (token.name, token.scope, token.organization.name, token.token_key) == ("CI", "read", "acme", key[:15])
    assert token.expiry is not None
    again = page.get("/settings/tokens/").content.decode()
    assert key not in again and f"{key[:15]}…" in again
    page.post(f"/settings/tokens/{token.uid}/revoke/")
    assert not AccessToken.objects.exists()


def test_tokens_page_limits_a_token_to_chosen_models(client, owner, private_model):
    signed_in(client, owner).post("/settings/tokens/", {"name": "one", "scope": "write", "models": ["alice/secret"]})
    token = AccessToken.objects.get()
    assert token.limited_to_models and [m.full_name for m in token.limited_models.all()] == ["alice/secret"]


def test_nobody_revokes_another_users_token_from_the_page(client, owner, outsider):
    from tests.tokens import api_token

    api_token(owner)
    token = AccessToken.objects.get()
    assert signed_in(client, outsider).post(f"/settings/tokens/{token.uid}/revoke/").status_code == 404
    assert AccessToken.objects.exists()


def test_creating_an_organisation_from_the_page(client, owner):
    response = signed_in(client, owner).post("/orgs/", {"name": "initech", "description": ""}, follow=True)
    assert "You are its admin" in text(response)
    response = client.post("/orgs/", {"name": "alice"})
    assert "The name &#x27;alice&#x27; is taken by a user or organisation." in text(response)


@pytest.mark.parametrize("persona", PERSONAS)
def test_organisation_page_as_each_persona(client, people, detector, persona):
    page = text(signed_in(client, people[persona]).get("/orgs/acme/"))
    member = persona in ("admin", "writer", "reader")
    assert ("acme/detector" in page) == member
    assert ("Members" in page) == member
    assert ("Add member" in page) == (persona == "admin")
    assert ("Audit log" in page) == (persona == "admin")


def test_org_admin_adds_changes_and_removes_members_from_the_page(client, people, acme, django_user_model):
    django_user_model.objects.create_user("dave")
    page = signed_in(client, people["admin"])
    page.post("/orgs/acme/members/", {"username": "dave", "role": "write"})
    assert Membership.objects.get(user__username="dave").role == "write"
    page.post("/orgs/acme/members/", {"username": "dave", "role": "read"})
    assert Membership.objects.get(user__username="dave").role == "read"
    page.post("/orgs/acme/members/", {"username": "dave", "remove": "1"})
    assert not Membership.objects.filter(user__username="dave").exists()


def test_a_writer_cannot_manage_members_from_the_page(client, people, acme):
    response = signed_in(client, people["writer"]).post("/orgs/acme/members/", {"username": "carol", "role": "admin"})
    assert response.status_code == 404
    assert Membership.objects.get(user__username="carol").role == "read"


def test_new_model_form_offers_the_organisations_you_write_to(client, people, acme):
    writer = signed_in(client, people["writer"])
    assert '<option value="acme"' in writer.get("/new/?owner=acme").content.decode()
    writer.post("/new/", {"owner": "acme", "name": "fresh", "public": ""})
    assert Model.objects.get(name="fresh").owner.username == "acme"


def test_a_reader_cannot_create_models_in_the_organisation_from_the_page(client, people, acme):
    response = signed_in(client, people["reader"]).post("/new/", {"owner": "acme", "name": "fresh"})
    assert response.status_code == 200  # the form again, with the error
    assert not Model.objects.filter(name="fresh").exists()


@pytest.mark.parametrize("persona", PERSONAS)
def test_model_page_shows_links_to_writers_and_the_audit_log_to_admins(client, people, detector, persona):
    response = signed_in(client, people[persona]).get("/acme/detector/")
    if persona in ("outsider", "anonymous"):
        assert response.status_code == 404
        return
    page = text(response)
    assert ("Mint access link" in page) == (persona in ("admin", "writer"))
    assert ("Audit log" in page) == (persona == "admin")


def test_writer_mints_and_revokes_an_access_link_from_the_page(client, people, detector, anon_client):
    page = signed_in(client, people["writer"])
    response = page.post(
        "/acme/detector/links/",
        {"ref": "production", "ttl_seconds": "3600", "origins": "https://app.example"},
        follow=True,
    )
    link = AccessLink.objects.get()
    assert (link.ref, link.origins) == ("production", ["https://app.example"])
    url = re.search(
        r"http://testserver(/m/acme/detector/production/model\.json\?access=[^<\s]+)", response.content.decode()
    )[1]
    assert anon_client.get(url, HTTP_ORIGIN="https://app.example").status_code == 200
    page.post(f"/acme/detector/links/{link.uid}/revoke/")
    assert anon_client.get(url, HTTP_ORIGIN="https://app.example").status_code == 403


def test_a_reader_cannot_mint_links_from_the_page(client, people, detector):
    response = signed_in(client, people["reader"]).post("/acme/detector/links/", {"ref": "1", "ttl_seconds": "3600"})
    assert response.status_code == 404
    assert not AccessLink.objects.exists()


def test_link_form_explains_a_bad_origin(client, people, detector):
    response = signed_in(client, people["admin"]).post(
        "/acme/detector/links/", {"ref": "1", "ttl_seconds": "3600", "origins": "app.example"}
    )
    assert "&#x27;app.example&#x27; is not an origin: use scheme://host[:port] only." in text(response)
