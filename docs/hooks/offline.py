"""MkDocs hook: keep the built site self-contained.

nbconvert's notebook template loads MathJax from a CDN; the tutorials write their formulas in
plain text, so the loader is removed. Any other script, stylesheet or image that a page would
fetch from another host fails the build, so the site works offline.
"""

from __future__ import annotations

import re
from typing import Any

from mkdocs.exceptions import PluginError

MATHJAX = re.compile(r'<script[^>]+src="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.I)
EXTERNAL = re.compile(r'<(?:script|img|link|iframe)\b[^>]*\b(?:src|href)="(https?:)?//[^"]*"', re.I)


def on_post_page(output: str, page: Any, config: Any) -> str:
    output = MATHJAX.sub("", output)
    for match in EXTERNAL.finditer(output):
        tag = match.group(0)
        if tag.lower().startswith("<link") and 'rel="canonical"' in tag:
            continue  # the page's own address (with site_url set), not an asset
        raise PluginError(f"{page.file.src_path}: external asset {tag[:120]!r}")
    return output
