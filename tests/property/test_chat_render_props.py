"""Whatever a chat user sends, the rendered body holds only the allow-listed markup."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast.chat.render import render_chat_body, strip_html

ALLOWED = {
    "a": {"href", "target", "rel"},
    "img": {"src", "alt", "title", "class"},
    **{tag: set() for tag in ("br", "p", "strong", "em", "code", "pre")},
}


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert tag in ALLOWED, tag


def tags_of(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser.seen


FRAGMENTS = st.sampled_from(
    [
        "<script>",
        "</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">',
        "<svg/onload=alert(1)>",
        "**",
        "_",
        "`",
        "[x](",
        ")",
        "![",
        "](/img/emoji/a.gif)",
        ":party:",
        "https://example.com/",
        "<",
        ">",
        '"',
        "'",
        "&#x3C;",
        "\n",
        " ",
        "on",
        "click=",
        "<iframe>",
        "<style>",
    ]
)
MESSAGES = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=20).map("".join)


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_rendered_bodies_hold_only_allowed_markup(message: str) -> None:
    html = render_chat_body(message, {"party": "/img/emoji/party.gif"})
    for tag, attributes in tags_of(html):
        assert tag in ALLOWED, html
        assert set(attributes) <= ALLOWED[tag], html
        if tag == "a" and "href" in attributes:
            href = attributes["href"].strip().lower()
            assert not href.startswith(("javascript:", "data:", "vbscript:")), html
        if tag == "img":
            assert attributes["src"].startswith("/img/emoji/"), html


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_cleaned_names_hold_no_markup(name: str) -> None:
    assert "<" not in strip_html(name)
