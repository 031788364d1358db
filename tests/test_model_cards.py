"""Model cards (Markdown, rendered safely), tags and license; searching models
through the API and the home page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from registry import services
from registry.models import Version
from tests.test_serving import make_ready_version

pytestmark = pytest.mark.django_db

HOSTILE = """# Detector

<script>alert('x')</script>
<img src=x onerror="alert(1)">
[click](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)
<a href="https://evil.example" onclick="steal()">html link</a>
![pixel](https://cdn.example/p.png)
[docs](https://docs.example/model)

| input | shape |
|---|---|
| image | 1×224×224×3 |
"""


class Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def assert_harmless(html: str) -> None:
    for tag, attrs in Elements(html).elements:
        assert tag not in ("script", "iframe", "object", "embed", "style", "form"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith(("javascript:", "data:", "vbscript:")), (tag, value)


def test_hostile_markdown_renders_without_script_handlers_or_javascript_links(owner_client, public_model, client):
    response = owner_client.patch(
        "/api/v1/models/alice/digits/", {"readme": HOSTILE, "tags": ["Vision", "mobilenet"], "license": "mit"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["readme"] == HOSTILE and body["tags"] == ["vision", "mobilenet"] and body["license"] == "mit"
    page = client.get("/alice/digits/").content.decode()
    card = page.split('<div class="model-card-body">', 1)[1].split("</section>", 1)[0]
    for html in (body["readme_html"], card):
        assert_harmless(html)
        assert "<h1>Detector</h1>" in html
        assert '<a href="https://docs.example/model" rel="noopener noreferrer nofollow">docs</a>' in html
        assert '<img src="https://cdn.example/p.png" alt="pixel">' in html
        assert "<th>input</th>" in html
        assert "&lt;script&gt;" in html  # raw HTML is shown as text, not run


def test_the_sanitiser_holds_even_when_html_reaches_it():
    from registry.cards import nh3_clean

    dirty = '<p onclick="x()">a</p><script>x()</script><a href="javascript:x()">b</a><img src="data:x" onerror="y">'
    cleaned = nh3_clean(dirty)
    assert_harmless(cleaned)
    assert cleaned.startswith("<p>a</p>")


def test_bad_tags_are_refused_in_words(owner_client, public_model):
    response = owner_client.patch("/api/v1/models/alice/digits/", {"tags": ["two words"]}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "tags: 'two words' is not a tag: use up to 32 lowercase letters, digits, '+', '.', '_' or '-'."
    )


def test_only_admins_edit_the_card_on_the_page(client, people, detector):
    client.force_login(people["writer"])
    assert "Edit the model card" not in client.get("/acme/detector/").content.decode()
    assert client.post("/acme/detector/card/", {"readme": "# mine"}).status_code == 404
    client.force_login(people["admin"])
    client.post(
        "/acme/detector/card/", {"readme": "# Finds *things*", "tags": "vision, boxes", "license": "apache-2.0"}
    )
    detector.refresh_from_db()
    assert (detector.readme, detector.tags, detector.license) == ("# Finds *things*", ["vision", "boxes"], "apache-2.0")
    page = client.get("/acme/detector/").content.decode()
    assert "<h1>Finds <em>things</em></h1>" in page


@pytest.fixture
def catalogue(owner, outsider):
    made = {}
    for owner_user, name, description, tags, public in [
        (owner, "faces", "Finds faces in photos", ["vision", "detection"], True),
        (owner, "sentiment", "Reads the mood of a sentence", ["text"], True),
        (outsider, "birds", "Bird species from song", ["audio"], True),
        (owner, "hidden-vision", "Private", ["vision"], False),
    ]:
        model = services.create_model(owner_user, name, description, public=public)
        model.tags = tags
        model.save()
        made[name] = model
    make_ready_version(made["faces"], 1)
    graph = make_ready_version(made["sentiment"], 1)
    Version.objects.filter(pk=graph.pk).update(output_format="graph-model")
    return made


def names(response) -> list[str]:
    data = response.json()
    return [model["full_name"] for model in (data["results"] if isinstance(data, dict) else data)]


def test_api_search_by_words_tag_and_format_respects_privacy(anon_client, owner_client, catalogue):
    assert names(anon_client.get("/api/v1/models/?q=faces")) == ["alice/faces"]
    assert names(anon_client.get("/api/v1/models/?q=mallory")) == ["mallory/birds"]
    assert names(anon_client.get("/api/v1/models/?q=mood sentence")) == ["alice/sentiment"]
    assert names(anon_client.get("/api/v1/models/?tag=vision")) == ["alice/faces"]
    assert sorted(names(owner_client.get("/api/v1/models/?tag=vision"))) == ["alice/faces", "alice/hidden-vision"]
    assert names(anon_client.get("/api/v1/models/?tag=visio")) == []  # tags match whole
    assert names(anon_client.get("/api/v1/models/?output_format=graph-model")) == ["alice/sentiment"]
    assert names(anon_client.get("/api/v1/models/?ordering=name")) == [
        "alice/faces",
        "alice/sentiment",
        "mallory/birds",
    ]


def test_api_pages_when_asked(anon_client, catalogue):
    first = anon_client.get("/api/v1/models/?ordering=name&page=1&page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"]
    second = anon_client.get("/api/v1/models/?ordering=name&page=2&page_size=2").json()
    assert [m["full_name"] for m in second["results"]] == ["mallory/birds"]
    assert isinstance(anon_client.get("/api/v1/models/").json(), list)  # unchanged without ?page


def test_home_page_searches_and_filters(client, catalogue):
    page = client.get("/?q=bird").content.decode()
    assert "birds" in page and "faces" not in page
    page = client.get("/?tag=vision").content.decode()
    assert "faces" in page and "hidden-vision" not in page and "sentiment" not in page
    assert "No model matches" in client.get("/?q=zebra").content.decode()
