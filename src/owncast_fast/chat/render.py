"""Chat bodies as Owncast renders them (reference §1.4): Markdown → HTML → allow-list sanitizer.

Owncast uses goldmark and bluemonday; we use markdown-it-py and nh3 (ammonia). The allow-list is
Owncast's: `a` (href), `br`, `p`, `strong`, `em`, `code`, `pre` and emoji `img`s whose `src` is under
`/img/emoji/`; links get `rel="nofollow noreferrer noopener"`, absolute ones `target="_blank"`;
`script`/`style`/`iframe` lose their content, other tags only their markup. Whitespace is not
byte-identical to goldmark's.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# bluemonday's emoji image rules, as Owncast configures them.
_EMOJI_SRC = re.compile(r"^/img/emoji/[^.%]*\.[A-Za-z]*$", re.IGNORECASE)
_EMOJI_CLASS = re.compile(r"^emoji[A-Za-z_]*$", re.IGNORECASE)
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_SHORTCODE = re.compile(r":([A-Za-z0-9_+\-]{1,64}):")
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

_TAGS = {"a", "br", "p", "strong", "em", "code", "pre", "img"}
_ATTRIBUTES = {"a": {"href", "target"}, "img": {"src", "alt", "title", "class"}}
_SCHEMES = {"http", "https", "mailto"}
_CONTENT_REMOVED = {"script", "style", "iframe"}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img":
        if attribute == "src":
            return value if _EMOJI_SRC.match(value) else None
        if attribute == "class":
            return value if _EMOJI_CLASS.match(value) else None
        return value or None  # alt and title only when not empty
    if tag == "a" and attribute == "target":
        return value if value == "_blank" else None
    return value


def _link_open(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    if _ABSOLUTE_URL.match(str(token.attrGet("href") or "")):
        token.attrSet("target", "_blank")
    return self.renderToken(tokens, idx, options, env)


def _markdown() -> MarkdownIt:
    markdown = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable("linkify")
    # Owncast linkifies only http(s) URLs with a scheme (xurls.Strict), not bare domains or e-mails.
    linkify = markdown.linkify
    assert linkify is not None  # enabled above
    linkify.set({"fuzzy_link": False, "fuzzy_email": False})
    markdown.add_render_rule("link_open", _link_open)
    return markdown


_markdown_renderer = _markdown()


def render_markdown(text: str) -> str:
    """Markdown to HTML without sanitizing (CHAT_ACTION and SYSTEM bodies, as Owncast)."""
    return _markdown_renderer.render(text.strip())


def sanitize(fragment: str) -> str:
    cleaned = nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=_SCHEMES,
        link_rel="nofollow noreferrer noopener",
        clean_content_tags=_CONTENT_REMOVED,
        strip_comments=True,
    )
    return _IMG_WITHOUT_SRC.sub("", cleaned)


def _emoji_tag(name: str, url: str) -> str:
    code = html.escape(f":{name}:")
    return f'<img src="{html.escape(url)}" class="emoji" alt="{code}" title="{code}">'


def replace_emoji(text: str, emoji: Mapping[str, str]) -> str:
    """Custom emoji shortcodes (case-insensitive `:name:`) → emoji image tags, as raw HTML in the Markdown.

    `emoji` maps a lower-case name to its URL under /img/emoji/.
    """
    if not emoji or ":" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        url = emoji.get(match.group(1).lower())
        return match.group(0) if url is None else _emoji_tag(match.group(1), url)

    return _SHORTCODE.sub(substitute, text)


def render_chat_body(text: str, emoji: Mapping[str, str] | None = None) -> str:
    """A user's chat message as sanitized HTML; "" means nothing is left to send (Owncast drops it)."""
    source = replace_emoji(text.strip(), emoji or {})
    return sanitize(_markdown_renderer.render(source)).strip()


_NO_TAGS: set[str] = set()


def strip_html(text: str) -> str:
    """Text with every tag removed (script/style content included); the rest stays HTML-escaped."""
    return nh3.clean(text, tags=_NO_TAGS, attributes={}, clean_content_tags=_CONTENT_REMOVED, strip_comments=True)
