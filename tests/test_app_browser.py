"""`pave demo`: upload handling, and the Gradio app driven by a real headless Chromium."""

import logging
import shutil
import socket
import sys

import pytest
import torch

from inference_media import save_patches, write_clip
from pave.app import patch_labels, require_gradio, side_from_uploads
from pave.cli import main
from pave.inference import SideRequirement
from pave.sidechannels import FeatureStore, SideChannel

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# As the machine notes say: no GPU, no sandbox as root, and nothing that reaches for the network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


def requirements(*channels):
    return {c: SideRequirement(c, None, 8, [c]) for c in channels}


def test_uploads_go_to_the_side_channel_that_needs_them(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.put("clip", SideChannel(torch.zeros(2, 1, 1, 8), torch.arange(2.0), "audio", "builtin-logmel"))
    item = next((tmp_path / "store" / "items").glob("*.safetensors"))
    assert side_from_uploads(requirements("audio"), [tmp_path / "a.wav"]) == {"audio": tmp_path / "a.wav"}
    views = [tmp_path / "cam1.mp4", tmp_path / "cam2.mp4"]
    side = side_from_uploads(requirements("exo", "audio"), [str(item), *views])
    assert side["exo"] == views and side["audio"].encoder == "builtin-logmel"  # features name their channel
    with pytest.raises(ValueError, match="cannot tell which side channel"):
        side_from_uploads(requirements("3d"), [tmp_path / "scan.zip"])


def test_patch_labels_are_short_and_unique(tmp_path):
    labels = patch_labels([tmp_path / "a" / "pave", tmp_path / "b" / "pave", tmp_path / "c" / "audio"])
    assert list(labels) == ["a/pave", "b/pave", "c/audio"]


def test_examples_one_question_of_each_kind_under_the_form(synthetic_bench, tiny_model_dir, tmp_path):
    pytest.importorskip("gradio", reason="the demo needs gradio (extra `demo`)")
    from pave.app import build_app
    from pave.commands.demo import quickstart_examples

    examples = quickstart_examples(synthetic_bench["root"])
    assert len(examples) == 3 and len({q for _, q in examples}) == 3
    assert all(video.exists() for video, _ in examples)
    patch = save_patches(tiny_model_dir, tmp_path)["audio"]
    app = build_app([patch], examples=examples)
    shown = [c for c in app.config["components"] if c.get("type") == "dataset"]
    assert len(shown) == 1 and len(shown[0]["props"]["samples"]) == 3


def test_missing_gradio_is_explained(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(ImportError, match=r"pave-patches\[demo\]"):
        require_gradio()
    with caplog.at_level(logging.ERROR):
        assert main(["demo", "--patch", "unused"]) == 1
    assert "pip install" in caplog.text


@pytest.fixture
def browser(tmp_path, monkeypatch):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (CI's .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upload_ask_and_see_the_answer_and_heatmap(browser, tiny_model_dir, tmp_path):
    pytest.importorskip("gradio", reason="needs gradio (the dev and demo extras)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pave.app import launch

    patches = save_patches(tiny_model_dir, tmp_path / "patches")
    clip = write_clip(tmp_path / "clip.mp4")
    app = launch([patches["audio"], patches["video"]], port=free_port(), block=False, max_new_tokens=6)
    try:
        browser.get(f"http://127.0.0.1:{app.server_port}/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video input[type=file]"))
        assert "audio side channel" in browser.find_element(By.ID, "needs").text
        browser.find_element(By.CSS_SELECTOR, "#video input[type=file]").send_keys(str(clip))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video video"))
        browser.find_element(By.CSS_SELECTOR, "#question textarea").send_keys("what colour is the square?")
        browser.find_element(By.ID, "ask").click()
        wait.until(lambda d: "Answered in" in d.find_element(By.ID, "status").text)
        answer = browser.find_element(By.CSS_SELECTOR, "#answer textarea").get_attribute("value")
        assert answer.strip()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#heatmap img"))
        assert "audio ← clip.mp4" in browser.find_element(By.ID, "status").text
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(tmp_path / "demo.png"))
        assert (tmp_path / "demo.png").stat().st_size > 10_000
    finally:
        app.close()
