"""Every endpoint of an organisation's private model, as each persona: org
admin, writer, reader, outsider and anonymous. Cannot see: 404; can see but
not act: 403; no credentials for a change: 401."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts import services as accounts
from accounts.models import AccessToken, Membership
from registry.models import AccessLink, Model
from tests.org_fixtures import PERSONAS
from tests.test_serving import SHA

pytestmark = pytest.mark.django_db

MODEL = "/api/v1/models/acme/detector/"
HDF5 = b"\x89HDF\r\n\x1a\n" + b"\0" * 1024


def upload():
    return {"file": SimpleUploadedFile("m.h5", HDF5)}


def link_id(detector, owner):
    return AccessLink.objects.create(model=detector, ref="1", created_by=owner, expires_at="2100-01-01T00:00Z").uid


# (method, path, body, statuses for admin, writer, reader, outsider, anonymous)
ENDPOINTS = [
    ("get", MODEL, None, [200, 200, 200, 404, 404]),
    ("patch", MODEL, {"description": "new"}, [200, 403, 403, 404, 401]),
    ("delete", MODEL, None, [204, 403, 403, 404, 401]),
    ("get", MODEL + "versions/", None, [200, 200, 200, 404, 404]),
    ("post", MODEL + "versions/", upload, [202, 202, 403, 404, 401]),
    ("get", MODEL + "versions/1/", None, [200, 200, 200, 404, 404]),
    ("get", MODEL + "versions/1/layers/", None, [200, 200, 200, 404, 404]),
    ("post", MODEL + "versions/1/variants/", {"variant": "uint8"}, [202, 202, 403, 404, 401]),
    ("get", MODEL + "aliases/", None, [200, 200, 200, 404, 404]),
    ("get", MODEL + "aliases/production/", None, [200, 200, 200, 404, 404]),
    ("put", MODEL + "aliases/production/", {"version": 2}, [200, 200, 403, 404, 401]),
    ("delete", MODEL + "aliases/production/", None, [204, 204, 403, 404, 401]),
    ("get", MODEL + "aliases/production/log/", None, [200, 200, 200, 404, 404]),
    ("post", MODEL + "aliases/production/rollback/", None, [409, 409, 403, 404, 401]),
    ("get", MODEL + "access-links/", None, [200, 200, 403, 404, 404]),
    ("post", MODEL + "access-links/", {"ref": "production", "ttl_seconds": 60}, [201, 201, 403, 404, 401]),
    ("delete", MODEL + "access-links/{link}/", None, [204, 204, 403, 404, 401]),
    ("get", MODEL + "audit/", None, [200, 403, 403, 404, 404]),
    ("get", "/m/acme/detector/1/model.json", None, [200, 200, 200, 404, 404]),
    ("get", "/m/acme/detector/production/model.json", None, [200, 200, 200, 404, 404]),
    ("get", f"/m/acme/detector/blobs/{SHA}", None, [200, 200, 200, 404, 404]),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "persona", "expected"),
    [
        pytest.param(method, path, body, persona, statuses[i], id=f"{method} {path} as {persona}")
        for method, path, body, statuses in ENDPOINTS
        for i, persona in enumerate(PERSONAS)
    ],
)
def test_each_persona_gets_what_its_role_allows(clients, detector, owner, method, path, body, persona, expected):
    path = path.replace("{link}", str(link_id(detector, owner)))
    data = body() if callable(body) else body
    kwargs = {"format": "multipart"} if callable(body) else {"format": "json"} if body is not None else {}
    response = getattr(clients[persona], method)(path, data, **kwargs)
    assert response.status_code == expected, getattr(response, "content", b"")[:300]


def test_refusals_say_which_role_is_needed(clients, detector):
    response = clients["reader"].post(MODEL + "versions/", upload(), format="multipart")
    assert response.json() == {"detail": "Changing 'acme/detector' needs the write role in acme."}
    response = clients["writer"].delete(MODEL)
    assert response.json() == {"detail": "Changing 'acme/detector' needs the admin role in acme."}
    assert clients["outsider"].get(MODEL).json() == {"detail": "No model 'acme/detector'."}


def test_model_list_shows_a_private_org_model_to_members_only(clients, detector):
    for persona in PERSONAS:
        names = [model["full_name"] for model in clients[persona].get("/api/v1/models/").json()]
        assert ("acme/detector" in names) == (persona in ("admin", "writer", "reader")), persona


@pytest.mark.parametrize(("persona", "expected"), list(zip(PERSONAS, [201, 201, 403, 403, 401], strict=True)))
def test_models_are_created_in_an_organisation_by_its_writers(clients, acme, persona, expected):
    response = clients[persona].post("/api/v1/models/", {"owner": "acme", "name": "fresh"}, format="json")
    assert response.status_code == expected
    if expected == 201:
        assert response.json()["full_name"] == "acme/fresh"
        assert Model.objects.get(name="fresh").owner.username == "acme"
    elif expected == 403:
        assert response.json() == {"detail": "You cannot create models in 'acme': that needs the write role there."}


def test_creating_an_organisation_makes_you_its_admin(owner_client):
    response = owner_client.post("/api/v1/orgs/", {"name": "initech", "description": "TPS"}, format="json")
    assert response.status_code == 201
    assert response.json()["your_role"] == "admin"
    assert response.json()["members"] == [
        {"username": "alice", "role": "admin", "created_at": response.json()["members"][0]["created_at"]}
    ]


@pytest.mark.parametrize(
    ("name", "status", "detail"),
    [
        ("alice", 409, "The name 'alice' is taken by a user or organisation."),
        ("api", 400, "'api' is reserved for Modelport's own pages; choose another name."),
        ("bad name", 400, "Use 1-39 ASCII letters, digits, '.', '_' or '-' for an organisation's name"),
        ("Alice", 409, "The name 'Alice' is taken by a user or organisation."),
        ("ａｃｍｅ", 400, "Use 1-39 ASCII letters"),
    ],
)
def test_organisation_names_cannot_collide_with_users_or_routes(owner_client, name, status, detail):
    response = owner_client.post("/api/v1/orgs/", {"name": name}, format="json")
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)


def test_an_organisation_cannot_sign_in_even_if_activated_with_a_password(client, acme):
    assert acme.account.is_active is False
    assert not acme.account.has_usable_password()
    acme.account.is_active = True
    acme.account.set_password("acme-password-1")
    acme.account.save()
    response = client.post("/login/", {"username": "acme", "password": "acme-password-1"})
    assert response.status_code == 200  # the form again, not a redirect
    assert "_auth_user_id" not in client.session
    client.force_login(acme.account)  # a session made some other way is not honoured either
    assert client.get("/settings/tokens/").status_code == 302


@pytest.mark.parametrize(("persona", "expected"), list(zip(PERSONAS, [201, 403, 403, 403, 401], strict=True)))
def test_org_admins_add_members(clients, acme, people, django_user_model, persona, expected):
    django_user_model.objects.create_user("dave")
    response = clients[persona].put("/api/v1/orgs/acme/members/dave/", {"role": "write"}, format="json")
    assert response.status_code == expected
    assert Membership.objects.filter(user__username="dave").exists() == (expected == 201)


def test_changing_a_role_is_200_and_removing_a_member_204(clients, acme, people):
    changed = clients["admin"].put("/api/v1/orgs/acme/members/carol/", {"role": "write"}, format="json")
    assert (changed.status_code, changed.json()["role"]) == (200, "write")
    assert clients["admin"].delete("/api/v1/orgs/acme/members/carol/").status_code == 204
    assert clients["reader"].get(MODEL).status_code == 404


@pytest.mark.parametrize(("persona", "expected"), list(zip(PERSONAS, [204, 403, 403, 403, 401], strict=True)))
def test_only_org_admins_remove_others(clients, acme, people, django_user_model, persona, expected):
    accounts.set_member(acme, django_user_model.objects.create_user("dave").username, "read", people["admin"])
    assert clients[persona].delete("/api/v1/orgs/acme/members/dave/").status_code == expected


def test_a_member_may_leave_but_the_last_admin_may_not(clients, acme, people):
    assert clients["reader"].delete("/api/v1/orgs/acme/members/carol/").status_code == 204
    response = clients["admin"].delete("/api/v1/orgs/acme/members/alice/")
    assert response.status_code == 409
    assert response.json() == {"detail": "acme needs at least one admin: make someone else admin first."}


def test_unknown_member_and_role_are_refused_in_words(clients, acme, people):
    response = clients["admin"].put("/api/v1/orgs/acme/members/nobody/", {"role": "write"}, format="json")
    assert (response.status_code, response.json()) == (404, {"detail": "There is no user named 'nobody'."})
    response = clients["admin"].put("/api/v1/orgs/acme/members/bob/", {"role": "owner"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == 'role: "owner" is not a valid choice.'
    response = clients["admin"].put("/api/v1/orgs/acme/members/acme/", {"role": "read"}, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("persona", "sees_members"), list(zip(PERSONAS, [True, True, True, False, False], strict=True))
)
def test_organisation_page_lists_members_to_members_only(clients, detector, persona, sees_members):
    body = clients[persona].get("/api/v1/orgs/acme/").json()
    assert body["name"] == "acme"
    assert (body["members"] is not None) == sees_members
    assert body["models"] == (["acme/detector"] if sees_members else [])


@pytest.mark.parametrize(("persona", "status"), list(zip(PERSONAS, [200, 200, 200, 404, 404], strict=True)))
def test_model_page_of_a_private_org_model_as_each_persona(client, people, detector, persona, status):
    if people[persona] is not None:
        client.force_login(people[persona])
    assert client.get("/acme/detector/").status_code == status


def test_removing_or_demoting_a_writer_revokes_the_links_they_minted(clients, detector, people, anon_client):
    from tests.tokens import api_token

    links = "/api/v1/models/acme/detector/access-links/"
    minted = clients["writer"].post(links, {"ref": "1", "ttl_seconds": 3600}, format="json").json()
    url = minted["model_url"].removeprefix("http://testserver")
    org_token = api_token(people["writer"], organization=acme_of(detector))
    assert anon_client.get(url).status_code == 200
    clients["admin"].put("/api/v1/orgs/acme/members/bob/", {"role": "read"}, format="json")
    assert anon_client.get(url).json() == {"detail": "This access link was revoked."}
    clients["admin"].delete("/api/v1/orgs/acme/members/bob/")
    assert AccessToken.objects.filter(key_hint(org_token)).count() == 0


def acme_of(model):
    return model.owner.organization


def key_hint(key: str):
    from django.db.models import Q

    return Q(token_key=key[:15])


def test_a_private_models_cors_answer_says_nothing_about_it(anon_client, clients, detector):
    detector.allowed_origins = ["https://app.example"]
    detector.save()
    for path in ("/m/acme/detector/1/model.json", "/m/acme/nothing/1/model.json"):
        response = anon_client.get(path, HTTP_ORIGIN="https://evil.example")
        assert response.status_code == 404
        assert response["Access-Control-Allow-Origin"] == "https://evil.example", path
    refused = clients["reader"].get("/m/acme/detector/1/model.json", HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    assert clients["reader"].get("/m/acme/detector/1/model.json", HTTP_ORIGIN="https://app.example").status_code == 200
