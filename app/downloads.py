"""How a download is named: the Content-Disposition header of RFC 6266.

Header values travel as ISO-8859-1 (gunicorn refuses anything else), so a name in another script goes
in `filename*`, percent-encoded UTF-8 (RFC 8187), next to an ASCII `filename` for clients that know no
better. Control characters never reach either, nor any part of a path but the last.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import quote

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SEPARATOR_RE = re.compile(r"[/\\]")
# What the ASCII name keeps as it is: it then needs no escape inside its quotes.
NOT_PLAIN_RE = re.compile(r"[^A-Za-z0-9 ._()-]")
# RFC 8187 attr-char besides letters and digits: what filename* carries without percent-encoding.
ATTR_CHARS = "!#$&+-.^_`|~"


def _plain(text: str) -> str:
    """The ASCII spelling of `text`: accents dropped, other scripts left out, the rest replaced by _."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return NOT_PLAIN_RE.sub("_", ascii_text)


def attachment(filename: str, default: str = "download") -> str:
    """Return the Content-Disposition value of a download named `filename` (`default` when nothing of
    the name is left)."""
    last_part = SEPARATOR_RE.split(CONTROL_RE.sub("", filename))[-1]
    name = unicodedata.normalize("NFC", last_part).strip(" .") or default
    stem, extension = posixpath.splitext(name)
    fallback = ((_plain(stem).strip(" .") or default) + _plain(extension)).rstrip(" .")
    value = f'attachment; filename="{fallback}"'
    if name != fallback:
        value += f"; filename*=UTF-8''{quote(name, safe=ATTR_CHARS)}"
    return value
