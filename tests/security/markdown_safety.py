"""What a Markdown report becomes in a CommonMark renderer with raw HTML on, and whether that
HTML holds anything but the report's own formatting."""

from __future__ import annotations

from html.parser import HTMLParser

from markdown_it import MarkdownIt

# The elements the report's own Markdown makes: headings, paragraphs, emphasis, code spans,
# lists, block quotes (warnings), tables; a description may also make headings, rules and
# line breaks. No link, image, script, SVG, iframe or any raw HTML.
ALLOWED_TAGS = frozenset(
    "h1 h2 h3 h4 h5 h6 p strong em code ul ol li blockquote table thead tbody tr th td br hr "
    "pre s".split()
)

_ALIGNMENTS = {"text-align:left", "text-align:right", "text-align:center"}


def renderer() -> MarkdownIt:
    """CommonMark with raw HTML passed through (as a careless viewer would), and GFM tables."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_decl(self, decl: str) -> None:
        self.comments.append(decl)

    def handle_pi(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rendered(markdown: str) -> tuple[str, _Elements]:
    html = renderer().render(markdown)
    parsed = _Elements()
    parsed.feed(html)
    parsed.close()
    return html, parsed


def unsafe_html(markdown: str) -> list[str]:
    """Everything in the rendered HTML the report itself would not make: other elements, any
    attribute but a table cell's alignment (or where a list's numbering starts), comments,
    declarations, processing instructions."""
    _, parsed = rendered(markdown)
    problems = [f"<{tag}>" for tag, _ in parsed.elements if tag not in ALLOWED_TAGS]
    for tag, attrs in parsed.elements:
        for name, value in attrs:
            alignment = tag in ("th", "td") and name == "style" and value in _ALIGNMENTS
            numbering = tag == "ol" and name == "start" and (value or "").isdigit()
            if not (alignment or numbering):
                problems.append(f"<{tag} {name}={value!r}>")
    problems += [f"<!{c}>" for c in parsed.comments]
    return problems


def visible_text(markdown: str) -> str:
    """The text a reader sees (entities decoded), whitespace runs as one space."""
    _, parsed = rendered(markdown)
    return " ".join("".join(parsed.text).split())
