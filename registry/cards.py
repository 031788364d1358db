"""Model cards: a README in Markdown, rendered to HTML a page can show.

markdown-it-py renders CommonMark (plus tables) with raw HTML off, so any
HTML in the text comes out escaped; nh3 (the ammonia sanitiser) then keeps
only an allowlist of tags and attributes and http(s)/mailto links, so no
script, event handler or ``javascript:`` URL survives even if the renderer
had a bug.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

MAX_README_CHARS = 100_000
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+._-]{0,31}\Z")
MAX_TAGS = 20

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "td": {"align"}, "th": {"align"}}


def render(markdown: str) -> str:
    return nh3_clean(_markdown.render(markdown))


def nh3_clean(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def clean_tags(tags: list[str]) -> list[str]:
    """Lowercase, unique, in the order given; raises ValueError in words."""
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not TAG_PATTERN.match(tag):
            raise ValueError(f"'{tag}' is not a tag: use up to 32 lowercase letters, digits, '+', '.', '_' or '-'.")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise ValueError(f"A model has at most {MAX_TAGS} tags.")
    return cleaned
