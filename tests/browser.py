"""Opening a page of ours in a real headless browser (Debian's chromium, which `setup.sh --dev` installs)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess


def open_in_chromium(page):
    """(the page's own check of its clips and images, chromium's console log) after it loads headless."""
    result = subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
                             page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'data-checked="([^"]*)"', result.stdout)
    assert match, result.stderr[-2000:]
    return json.loads(html.unescape(match.group(1))), result.stderr
