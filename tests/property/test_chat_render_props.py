"""Whatever a chat user sends, the rendered body holds only the allow-listed markup."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast.chat.render import render_chat_body, strip_html

ALLOWED_TAG = re.compile(r"</?(a|br|p|strong|em|code|pre|img)[\s>/]")
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
    for tag in re.findall(r"<[^>]*>", html):
        assert ALLOWED_TAG.match(tag), html
        assert not re.search(r"\son[a-z]+=|javascript:|style=", tag, re.I), html


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_cleaned_names_hold_no_markup(name: str) -> None:
    assert "<" not in strip_html(name)
