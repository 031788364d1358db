from __future__ import annotations

from html import unescape

import pytest
from django.test import Client

from registry import services
from registry.models import Model, Version

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    """The page as a reader sees it: entities like &#x27; decoded."""
    return unescape(response.content.decode())


def add_version(model: Model, number: int, **fields) -> Version:
    defaults = {
        "upload_name": "model.h5",
        "upload_size": 15144,
        "upload_sha256": "0" * 64,
        "upload_key": f"uploads/test-{model.pk}-{number}/upload",
    }
    return Version.objects.create(model=model, number=number, **{**defaults, **fields})


def test_home_lists_public_models_for_anonymous_visitors(client, public_model, private_model):
    page = client.get("/").content.decode()

    assert "/alice/digits/" in page
    assert "Handwritten digits" in page
    assert "/alice/secret/" not in page


def test_home_hides_private_models_of_other_users(outsider, public_model, private_model):
    page = signed_in(outsider).get("/").content.decode()

    assert "/alice/digits/" in page
    assert "/alice/secret/" not in page


def test_home_shows_own_private_model_with_badge(owner, private_model):
    page = signed_in(owner).get("/").content.decode()

    assert "/alice/secret/" in page
    assert "Private" in page


def test_home_shows_latest_ready_version_number(client, public_model):
    add_version(public_model, 1, status=Version.Status.READY, output_format=Version.OutputFormat.LAYERS)
    add_version(public_model, 2, status=Version.Status.FAILED)

    page = client.get("/").content.decode()

    assert "Latest ready version: <strong>1</strong>" in page


def test_home_explains_modelport_when_there_are_no_models(client):
    page = client.get("/").content.decode()

    assert "Nothing here yet" in page


def test_private_model_page_is_404_for_another_user(outsider, private_model):
    assert signed_in(outsider).get("/alice/secret/").status_code == 404


def test_private_model_page_is_404_for_anonymous_visitors(client, private_model):
    assert client.get("/alice/secret/").status_code == 404


def test_private_model_page_is_shown_to_its_owner(owner, private_model):
    response = signed_in(owner).get("/alice/secret/")

    assert response.status_code == 200
    assert "only alice can see and load it" in response.content.decode()


def test_unknown_model_page_is_404(client):
    assert client.get("/alice/nothing/").status_code == 404


def test_owner_sees_upload_form(owner, public_model):
    page = signed_in(owner).get("/alice/digits/").content.decode()

    assert 'id="upload-form"' in page
    assert 'action="/api/v1/models/alice/digits/versions/"' in page
    assert 'accept=".h5,.keras,.zip,.tar,.tar.gz,.tgz"' in page


def test_other_user_does_not_see_upload_form(outsider, public_model):
    page = signed_in(outsider).get("/alice/digits/").content.decode()

    assert "Upload a new version" not in page
    assert 'id="upload-form"' not in page


def test_anonymous_visitor_does_not_see_upload_form(client, public_model):
    page = client.get("/alice/digits/").content.decode()

    assert 'id="upload-form"' not in page


def test_model_page_shows_snippets_for_ready_versions(client, public_model):
    add_version(public_model, 1, status=Version.Status.READY, output_format=Version.OutputFormat.GRAPH)

    page = text(client.get("/alice/digits/"))

    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/1/model.json');" in page
    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/latest/model.json');" in page
    assert "vendor/tfjs/tf.min.js" in page


def test_model_page_shows_why_a_version_failed(client, public_model):
    add_version(
        public_model,
        1,
        status=Version.Status.FAILED,
        failure=Version.Failure.USER,
        error="The converter failed on this model: Unknown layer: Funky",
    )

    page = client.get("/alice/digits/").content.decode()

    assert "The converter failed on this model: Unknown layer: Funky" in page
    assert "Fix the file and upload it again." in page
    assert 'id="try-it" hidden' in page


def test_create_page_requires_sign_in(client):
    response = client.get("/new/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/new/"


def test_create_form_explains_invalid_name(owner):
    response = signed_in(owner).post("/new/", {"name": "bad name!", "public": "on"})

    assert response.status_code == 200
    assert "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit." in text(response)
    assert not Model.objects.exists()


def test_create_form_requires_a_name(owner):
    response = signed_in(owner).post("/new/", {"name": ""})

    assert "This field is required." in response.content.decode()


def test_create_form_explains_duplicate_name(owner, public_model):
    response = signed_in(owner).post("/new/", {"name": "digits"})

    assert "You already have a model named 'digits'." in text(response)
    assert Model.objects.filter(owner=owner).count() == 1


def test_create_form_makes_model_and_redirects_to_it(owner):
    response = signed_in(owner).post("/new/", {"name": "mnist", "description": "Digits", "public": ""})

    assert response.status_code == 302
    assert response["Location"] == "/alice/mnist/"
    model = Model.objects.get(owner=owner, name="mnist")
    assert model.description == "Digits"
    assert model.public is False


def test_same_name_is_free_for_another_user(outsider, public_model):
    response = signed_in(outsider).post("/new/", {"name": "digits", "public": "on"})

    assert response["Location"] == "/mallory/digits/"


def test_login_page_signs_in_and_logout_needs_post(client, owner):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response["Location"] == "/"

    assert 'action="/logout/"' in client.get("/").content.decode()
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert "Sign in" in client.get("/").content.decode()


def test_model_page_escapes_user_text(owner):
    services.create_model(owner, "xss", "<script>alert(1)</script>")

    page = signed_in(owner).get("/alice/xss/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
