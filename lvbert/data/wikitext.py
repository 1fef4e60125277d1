"""MediaWiki XML dump -> plain prose, for the demo pre-training text.

A small, dependency-free cleaner: it keeps the running text of articles and
drops everything that is not prose (templates, tables, references, files,
categories, lists, headings and the reference sections at the end). It is
tuned for the short English Wikipedia extract shipped inside gensim's test
data; it is not a full wikitext parser.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from typing import IO, Iterator

# Sections after which an article only holds lists of links and sources.
_END_SECTIONS = {
    "see also", "references", "notes", "external links", "further reading",
    "bibliography", "sources", "footnotes", "citations", "notes and references",
}
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_DROP_TAGS = re.compile(r"<(math|gallery|timeline|source|syntaxhighlight|pre|score|imagemap|table)[^>]*>.*?</\1>", re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # innermost template, removed repeatedly
_TABLE = re.compile(r"\{\|[^{}]*?\|\}", re.S)  # innermost table
_FILE_LINK = re.compile(r"\[\[(?:file|image|category|media):[^\[\]]*\]\]", re.I)
_LANG_LINK = re.compile(r"\[\[[a-z\-]{2,12}:[^\[\]]*\]\]")
_LINK = re.compile(r"\[\[([^\[\]|]*)\|?([^\[\]]*)\]\]")
_EXT_LINK = re.compile(r"\[(?:https?:)?//[^\s\]]+\s*([^\]]*)\]")
_BARE_URL = re.compile(r"https?://\S+")
_QUOTES = re.compile(r"'{2,5}")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_SPACES = re.compile(r"[ \t\u00a0]+")
_EMPTY_PARENS = re.compile(r"\(\s*[,;]?\s*\)")
_SPACE_PUNCT = re.compile(r"\s+([,.;:!?])")


def _link_text(m: re.Match) -> str:
    target, label = m.group(1), m.group(2)
    return label if label else target


def _remove_nested(pattern: re.Pattern, text: str) -> str:
    """Remove innermost matches until none is left (templates and tables nest)."""
    while True:
        new = pattern.sub("", text)
        if new == text:
            return new
        text = new


def clean_wikitext(text: str) -> str:
    """Turn one article's wikitext into paragraphs of prose separated by ``\\n``."""
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _DROP_TAGS.sub("", text)
    text = _remove_nested(_TEMPLATE, text)
    text = _remove_nested(_TABLE, text)
    text = _remove_nested(_FILE_LINK, text)  # captions may hold links: inner ones go first below
    for _ in range(3):  # a caption's links, then the file link that held them
        text = _LINK.sub(_link_text, _FILE_LINK.sub("", text)) if "[[" in text else text
    text = _LANG_LINK.sub("", text)
    text = _EXT_LINK.sub(lambda m: m.group(1), text)
    text = _BARE_URL.sub("", text)
    text = _QUOTES.sub("", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    paragraphs = []
    for line in text.split("\n"):
        line = line.strip()
        heading = _HEADING.match(line)
        if heading:
            if heading.group(2).strip().lower() in _END_SECTIONS:
                break
            continue
        # lists, indents, definitions, table rows and leftover markup are not prose
        if not line or line[0] in "*#:;|!{}[_" or line.startswith("}}"):
            continue
        line = _SPACES.sub(" ", line)
        line = _EMPTY_PARENS.sub("", line)
        line = _SPACE_PUNCT.sub(r"\1", line).strip()
        # keep sentences: a few words ending like a sentence
        if len(line.split()) >= 6 and line[-1] in ".!?\"')":
            paragraphs.append(line)
    return "\n".join(paragraphs)


def iter_wiki_articles(stream: IO[bytes], min_chars: int = 200) -> Iterator[tuple[str, str]]:
    """Yield ``(title, prose)`` for each main-namespace, non-redirect page of a dump.

    ``stream`` is the (decompressed) XML; it is parsed incrementally.
    """
    title, ns, redirect = "", "", False
    for event, elem in ET.iterparse(stream, events=("end",)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "title":
            title = elem.text or ""
        elif tag == "ns":
            ns = (elem.text or "").strip()
        elif tag == "redirect":
            redirect = True
        elif tag == "page":
            text_elem = next((e for e in elem.iter() if e.tag.rsplit("}", 1)[-1] == "text"), None)
            raw = text_elem.text if text_elem is not None else None
            if ns == "0" and not redirect and raw and not raw.lstrip().lower().startswith("#redirect"):
                prose = clean_wikitext(raw)
                if len(prose) >= min_chars:
                    yield title, prose
            title, ns, redirect = "", "", False
            elem.clear()
