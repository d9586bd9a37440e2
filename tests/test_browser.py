"""The published quarterly report in a real browser: headless Chromium opens index.html and every section page.

Chromium is driven over the Chrome DevTools Protocol on a websocket (websocket-client), so nothing is downloaded:
no browser bundle, no driver. Install the browser with `make browser-deps` (Debian packages chromium,
chromium-driver and fonts-noto-cjk); where it is missing the test is skipped and says how to get it.
Screenshots go to the test's tmp folder and are copied to benchmarks/out/screenshots/ (git-ignored) for a look.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "benchmarks" / "out" / "screenshots"
CHROMIUM = next((p for p in (os.environ.get("CSBENCH_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--remote-debugging-port=0", "--window-size=1280,900"]
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

try: import websocket  # websocket-client, installed with jupyter
except ImportError: websocket = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found (looked for `chromium` on PATH and /usr/bin/chromium): "
                       "run `make browser-deps` (apt-get install chromium chromium-driver fonts-noto-cjk) to run the browser test"),
    pytest.mark.skipif(websocket is None, reason="the browser test drives Chromium with websocket-client: pip install websocket-client"),
]


class Chromium:
    "A headless Chromium with one tab, driven over the DevTools protocol."

    def __init__(self, profile: Path):
        profile.mkdir(parents=True, exist_ok=True)
        self.log = (profile / "chromium.log").open("wb")
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Chromium did not start: {(profile / 'chromium.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        tab = next(t for t in json.load(no_proxy.open(f"http://127.0.0.1:{port}/json/list", timeout=30)) if t["type"] == "page")
        self.ws = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self._id, self.events = 0, []
        for domain in ("Page", "Runtime", "Log"): self.send(f"{domain}.enable")

    def send(self, method: str, **params) -> dict:
        "Call a DevTools method and return its result; events that arrive meanwhile are kept in `events`."
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def open(self, url: str) -> None:
        "Load `url`, wait for its load event and for every image to decode."
        self.events = []
        self.send("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv()))
        self.eval("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null))).then(() => true)")

    def eval(self, expression: str):
        "The value of a JavaScript expression in the page (promises awaited)."
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        "Console errors, uncaught exceptions and failed loads since the page was opened."
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown": out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error": out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def screenshot(self, path: Path, max_height: int = 9000) -> Path:
        "A PNG of the whole page (cut at `max_height` CSS pixels)."
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None): self.ws.close()
        self.proc.terminate()
        try: self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def reports():
    "The quarterly report: 2025Q4 in English (compared with 2025Q3) and 2025Q3 in Japanese, made once per session."
    from test_report import english_quarters, japanese_quarter
    return {"en": english_quarters()[2], "ja": japanese_quarter()}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    "Where screenshots go: the test's tmp folder; each is copied to benchmarks/out/screenshots/."
    SHOTS.mkdir(parents=True, exist_ok=True)
    return tmp_path_factory.mktemp("screenshots")


def _save(browser, shots: Path, name: str) -> Path:
    path = browser.screenshot(shots / f"{name}.png")
    shutil.copy(path, SHOTS / path.name)
    return path


def _images(browser) -> list:
    return browser.eval("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_index_in_chromium(browser, reports, shots, lang):
    res = reports[lang]
    browser.open(res.index.as_uri())
    assert browser.errors() == []
    text = browser.eval("document.body.innerText")
    prov = json.loads((res.path / "provenance.json").read_text())
    for t in prov["templates"]:
        for h in t["headlines"]: assert h["text"] in text, (t["name"], h)
    links = browser.eval("Array.from(document.querySelectorAll('ol.sections a')).map(a => a.getAttribute('href'))")
    assert links == [t["page"] for t in prov["templates"]]
    assert browser.eval("document.querySelectorAll('.card').length") >= 1
    assert all(ok and w > 0 for ok, w, _ in _images(browser))
    assert prov["data"]["fingerprint"][:16] in text and prov["git_commit"] in text
    if lang == "en":  # 2025Q4 against 2025Q3
        changes = [h["change_text"] for t in prov["templates"] for h in t["headlines"] if "change_text" in h]
        assert changes and all(c in text for c in changes)
        assert "vs 2025Q3" in text
    else:
        assert CJK.search(browser.eval("document.querySelector('h1').innerText"))
        assert "2025Q2" in text  # no previous report to compare with
    assert _save(browser, shots, f"{lang}_index").stat().st_size > 10_000


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_section_pages_in_chromium(browser, reports, shots, lang):
    res = reports[lang]
    prov = json.loads((res.path / "provenance.json").read_text())
    assert prov["templates"]
    for t in prov["templates"]:
        page = res.path / t["page"]
        browser.open(page.as_uri())
        assert browser.errors() == [], t["name"]
        imgs = _images(browser)
        assert len(imgs) == page.read_text().count("<img "), t["name"]
        assert all(ok and w > 0 and alt for ok, w, alt in imgs), (t["name"], imgs)
        footer = browser.eval("(document.querySelector('footer.csbench-provenance') || {}).innerText || ''")
        assert prov["data"]["fingerprint"][:16] in footer and prov["csbench_version"] in footer and t["sha256"][:12] in footer, t["name"]
        h1 = browser.eval("Array.from(document.querySelectorAll('h1')).map(h => h.innerText)")
        assert h1, f"{t['name']} has no heading"
        if lang == "ja": assert all(CJK.search(h) for h in h1), (t["name"], h1)
        assert browser.eval("document.querySelector('nav a').getAttribute('href')") == "index.html"
        _save(browser, shots, f"{lang}_{t['name']}")
