"""higgs-studio driven from headless Chromium as a user would: one smoke run from the built-in kit is started on
the Train page, its sample played, the page reloaded mid-training, the run stopped and resumed, the server killed
mid-training (the run goes on, a restarted studio finds it, and `higgs-train` resumes it); then its adapter is
exported and compared with the base on builtin:demo-eval; files outside the root are refused by URL and by path
field. Each page's screenshot goes to docs/ (the README shows them)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_STEPS = 250  # long enough that a stop after a reload, a resume and a server restart still finds it running
MAX_UPLOAD_MB = 1



def _setting(page, key: str):
    """A Train-page setting by its key: its accessible name is the key, then its help text (the field's info)."""
    return page.get_by_label(re.compile(r"(^|\s)" + re.escape(key) + r"(\s|$)"))

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StudioServer:
    """`higgs-studio --root ROOT --port PORT` as a child process; `restart()` kills it (SIGKILL) and starts anew."""

    def __init__(self, root: Path):
        self.root, self.port, self.process = root, _free_port(), None
        self.url = f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        argv = [sys.executable, "-m", "higgs_train.studio", "--root", str(self.root), "--port", str(self.port),
                "--max-upload-mb", str(MAX_UPLOAD_MB)]
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in self.process.stdout:  # blocks until the server says where it listens
            seen.append(line)
            if "Running on local URL" in line:
                return
        raise AssertionError("higgs-studio did not start:\n" + "".join(seen))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-root")
    server = StudioServer(root)
    server.start()
    yield server
    server.kill()
    for record in (root / ".studio" / "jobs").glob("*.json"):  # jobs outlive the server: end the ones we started
        job = json.loads(record.read_text())
        if job.get("pid") and not record.with_suffix(".rc").exists():
            try:
                os.killpg(job["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def page(studio):
    with playwright.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="studio-chromium-"), executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 1000})
        tab = context.new_page()
        outside = []
        tab.on("request", lambda request: outside.append(request.url) if not request.url.startswith(
            (studio.url, "data:", "blob:")) else None)
        tab.goto(studio.url)
        yield tab
        assert outside == [], f"the page reached outside the studio: {outside[:5]}"
        context.close()


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _choose(page, elem_id: str, option: str | re.Pattern) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).first.click()


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea").input_value()


def _screenshot(page, name: str) -> None:
    page.screenshot(path=str(DOCS / f"studio_{name}.png"), full_page=True)


def _wait_done(page, log_id: str, timeout_s: int) -> None:
    expect(page.locator(f"#{log_id} textarea")).to_have_value(re.compile(r"^\[(done|failed|stopped)\]"),
                                                             timeout=timeout_s * 1000)
    assert _value(page, log_id).startswith("[done]"), _value(page, log_id)


def test_a_smoke_run_plays_its_samples_survives_reloads_stops_resumes_and_outlives_the_server(studio, page):
    _tab(page, "Train")
    page.get_by_label("run name").fill("smoke")
    _setting(page, "trainer.max_steps").fill(str(MAX_STEPS))
    _setting(page, "trainer.save_every_n_steps").fill("5")
    _setting(page, "eval.every_n_steps").fill("50")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#train-command textarea")).to_have_value(
        f"higgs-train recipe=smoke trainer.max_steps={MAX_STEPS} trainer.save_every_n_steps=5 eval.every_n_steps=50 "
        "out=runs/smoke resume=auto")
    state = page.locator("#train-state")
    expect(state).to_contain_text(re.compile(r"running · step \d+ · [1-9]\d* samples"), timeout=120_000)

    _choose(page, "train-samples", re.compile(r"^step 50 · "))  # the first evaluation's sample, while it trains
    for player in ("#train-sample", "#train-target"):  # the sample, beside the clip it should match
        expect(page.locator(player).get_by_test_id("download-link")).to_have_attribute(
            "href", re.compile(r"/gradio_api/file=.*\.wav$"), timeout=20_000)
        expect(page.locator(f"{player} #duration")).not_to_have_text("0:00", timeout=20_000)  # decoded
    page.locator("#train-sample").get_by_role("button", name="Play", exact=True).click()
    expect(page.locator("#train-sample").get_by_role("button", name="Pause", exact=True)).to_be_visible()
    _screenshot(page, "train")

    page.reload()  # the run goes on: its state comes from the run folder
    _tab(page, "Train")
    expect(state).to_contain_text("smoke: running", timeout=20_000)

    page.get_by_role("button", name="Stop").click()  # SIGTERM: a checkpoint after the step in flight
    expect(state).to_contain_text(re.compile(r"stopped at step_\d+ \(resume continues it\)"), timeout=60_000)
    stopped_at = max(json.loads(line)["step"] for line in (studio.root / "runs/smoke/metrics.jsonl").open())
    page.get_by_role("button", name="Resume").click()
    expect(state).to_contain_text("smoke: running", timeout=60_000)
    expect(state).to_contain_text(re.compile(rf"step (?!{stopped_at} )\d+"), timeout=60_000)  # it trains on

    studio.kill()  # mid-training: the run is in a session of its own and goes on
    studio.start()
    page.goto(studio.url)
    _tab(page, "Train")
    expect(state).to_contain_text("smoke: running", timeout=20_000)  # the new server found it
    page.get_by_role("button", name="Stop").click()
    expect(state).to_contain_text("stopped at step_", timeout=60_000)

    shown = _value(page, "train-command")  # the command the studio shows is the one a user copies
    argv = shlex.split(shown)
    assert argv[0] == "higgs-train" and "resume=auto" in argv
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", *argv[1:]], cwd=studio.root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "resumed from" in done.stdout + done.stderr
    summary = json.loads((studio.root / "runs/smoke/run_summary.json").read_text())
    assert summary["steps"] == MAX_STEPS, summary
    expect(state).to_contain_text("smoke: finished", timeout=20_000)


def test_the_run_exports_its_adapter_with_the_command_shown(studio, page):
    _tab(page, "Export")
    _choose(page, "export-run", "smoke")
    page.get_by_role("button", name="Export").click()
    expect(page.locator("#export-command textarea")).to_have_value("higgs-export run_dir=runs/smoke")
    _wait_done(page, "export-log", 120)
    assert (studio.root / "runs/smoke/export/adapter/adapter_config.json").is_file()
    _screenshot(page, "export")


def test_the_run_and_the_base_compare_on_the_demo_list_with_verdicts_and_players(studio, page):
    _tab(page, "Compare")
    page.locator("#compare-variants").get_by_label("runs/smoke/export/adapter").check()
    page.get_by_label("max_new_tokens", exact=True).first.fill("80")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#compare-command textarea")).to_have_value(re.compile(
        r"^higgs-eval model=builtin:tiny adapter=runs/smoke/export/adapter list=builtin:demo-eval out=evals/ab-"))
    _wait_done(page, "compare-log", 180)
    table = page.locator("#compare-table")
    expect(table).to_contain_text("stop_rate", timeout=20_000)
    expect(table).to_contain_text(re.compile(r"better|worse|no measurable difference"))
    _choose(page, "compare-utterance", re.compile(".+"))
    players = page.locator("#compare-players").get_by_test_id("download-link")
    expect(players).to_have_count(2, timeout=20_000)  # one per model, the same utterance
    for index in range(2):
        expect(players.nth(index)).to_have_attribute("href", re.compile(r"/gradio_api/file=.*\.wav$"))
    _screenshot(page, "compare")


def test_files_outside_the_root_are_refused_by_url_and_by_path_field(studio, page, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (studio.root / "escape").symlink_to(tmp_path)
    inside = studio.root / "inside.txt"
    inside.write_text("ours")
    for path in (secret, studio.root / "escape" / "secret.txt", Path(f"{studio.root}/../{tmp_path.name}/secret.txt")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{studio.url}gradio_api/file={path}")
        assert refused.value.code == 403
    assert urllib.request.urlopen(f"{studio.url}gradio_api/file={inside}").read() == b"ours"

    boundary = "studio-test"
    for size_mb, code in ((2, 413), (0.5, 200)):  # uploads above --max-upload-mb are refused
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.wav\"\r\n\r\n".encode()
                + b"0" * int(size_mb * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode())
        request = urllib.request.Request(f"{studio.url}gradio_api/upload", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            assert urllib.request.urlopen(request).status == code
        except urllib.error.HTTPError as refused:
            assert refused.code == code

    _tab(page, "Data")
    for given, says in ((str(tmp_path), "outside the studio's root"), ("../x", "'..' is not allowed"),
                        ("escape", "outside the studio's root")):
        page.get_by_label("input folder (or .jsonl)").fill(given)
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#data-notice")).to_contain_text(f"refused: {given}")
        expect(page.locator("#data-notice")).to_contain_text(says)


def test_a_converted_dataset_is_browsed_and_corrected_into_its_overrides_file(studio, page):
    from higgs_train.builtins.assets import ensure_builtin

    shutil.copytree(ensure_builtin("demo"), studio.root / "voices", ignore=shutil.ignore_patterns("codes"))
    _tab(page, "Data")
    page.get_by_label("input folder (or .jsonl)").fill("voices/train.jsonl")
    _choose(page, "data-action", "convert jsonl")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#data-command textarea")).to_have_value(
        "higgs-prep convert jsonl --data voices/train.jsonl --out data/ready")
    _wait_done(page, "data-log", 120)
    page.get_by_role("button", name="Open").click()
    _choose(page, "data-clip", "alice_00")
    expect(page.get_by_label("transcript")).to_have_value("The sun rises in the east.")
    page.get_by_label("transcript").fill("The sun rises in the far east.")
    page.get_by_role("button", name="Save transcript").click()
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#data-said")).to_contain_text("rejected=True")
    lines = [json.loads(line) for line in (studio.root / "data/ready/overrides.jsonl").open()]
    assert lines == [{"id": "alice_00", "text": "The sun rises in the far east."}, {"id": "alice_00", "rejected": True}]
    assert (studio.root / "data/ready/clips").is_dir() and any((studio.root / "data/ready/clips").iterdir())
    _screenshot(page, "data")
    _tab(page, "Speak")
    _screenshot(page, "speak")
