"""`cppn-video serve` in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium against the app on a real uvicorn server. It clicks a seed and a class, moves a slider, adds three
keyframes (reorders and deletes), switches checkpoints, plays the walk preview, renders a 64x64 walk of 12 frames and checks that the page's <video> plays
it (a real positive duration). CPPN_SCREENSHOT=path saves the page (the README's docs/serve.png)."""
from __future__ import annotations

import io
import os
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve-test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve-test]'")
pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[serve-test]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no headless browser here: apt-get install -y chromium chromium-driver", allow_module_level=True)

from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from pipeline.serve.app import background_server, create_app  # noqa: E402
from video_helpers import read_video  # noqa: E402


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1320,940", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except Exception as e:  # a broken install: say so rather than fail the suite
        pytest.skip(f"chromium would not start here ({type(e).__name__}: {str(e).splitlines()[0]})")
    try:
        yield driver
    finally:
        driver.quit()


def _screen(driver) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L"))


def _frame_id(driver) -> int:
    return int(driver.find_element(By.ID, "preview").get_attribute("data-frame"))


def _after(driver, action, timeout=20):
    """Do `action` and wait until the live preview shows a newer frame."""
    before = _frame_id(driver)
    action()
    WebDriverWait(driver, timeout).until(lambda d: _frame_id(d) > before)


def test_explore_pick_keyframes_and_render_in_the_browser(browser, tmp_path):
    out = tmp_path / "out"
    d = browser
    with background_server(create_app(out=out)) as url:
        d.get(url + "/")
        wait = WebDriverWait(d, 30)
        wait.until(lambda d: _frame_id(d) > 0 and len(d.find_elements(By.CSS_SELECTOR, "#seeds img")) == 16)
        assert d.find_element(By.ID, "conn").text == "live"
        first = _screen(d)

        _after(d, lambda: d.find_element(By.CSS_SELECTOR, '#seeds img[data-seed="3"]').click())
        assert d.find_element(By.ID, "where").text == "seed 3"
        assert not np.array_equal(_screen(d), first), "clicking a seed did not change the page"
        d.find_element(By.ID, "add-key").click()

        _after(d, lambda: d.find_element(By.ID, "class-7").click())
        assert d.find_element(By.ID, "where").text == "class 7 (mean)"
        d.find_element(By.ID, "add-key").click()

        slider = d.find_element(By.ID, "dir-0")
        _after(d, lambda: d.execute_script(
            "arguments[0].value = 1.5; arguments[0].dispatchEvent(new Event('input'));", slider))
        d.find_element(By.ID, "add-key").click()

        def keys():
            return [li.get_attribute("title") for li in d.find_elements(By.CSS_SELECTOR, "#keys li")]

        assert keys() == ["seed 3", "class 7 (mean)", "class 7 (mean)"]
        d.find_element(By.CSS_SELECTOR, '#keys li:nth-child(1) button[title="move later"]').click()
        assert keys() == ["class 7 (mean)", "seed 3", "class 7 (mean)"]
        d.find_element(By.CSS_SELECTOR, '#keys li:nth-child(2) button[title="move earlier"]').click()
        d.find_element(By.ID, "add-key").click()
        d.find_element(By.CSS_SELECTOR, '#keys li:nth-child(4) button[title="delete"]').click()
        assert keys() == ["seed 3", "class 7 (mean)", "class 7 (mean)"]

        # the checkpoint switcher: another generator draws another frame of the same latent
        before = _screen(d)
        _after(d, lambda: d.find_element(By.CSS_SELECTOR, '#ckpt option[value="e6"]').click())
        assert not np.array_equal(_screen(d), before)
        _after(d, lambda: d.find_element(By.CSS_SELECTOR, '#ckpt option[value="e24"]').click())

        # the camera: dragging the preview pans it (the picture follows the pointer), a typed zoom zooms it
        from selenium.webdriver.common.action_chains import ActionChains

        before = _screen(d)
        _after(d, lambda: ActionChains(d).drag_and_drop_by_offset(d.find_element(By.ID, "preview"), 48, 0).perform())
        pan_text = d.find_element(By.ID, "cam-pan").get_attribute("value")
        pan = [float(v) for v in pan_text.split(",")]
        assert pan == pytest.approx([-48 * 16 / 383, 0]), pan  # 48 px of the 384 preview at scale 8, zoom 1
        assert not np.array_equal(_screen(d), before)
        zoom = d.find_element(By.ID, "cam-zoom")
        _after(d, lambda: (zoom.send_keys("2"), d.execute_script(
            "arguments[0].dispatchEvent(new Event('change'));", zoom)))

        d.find_element(By.ID, "loop").click()
        d.find_element(By.ID, "play").click()  # the low-resolution walk preview draws into #walk
        wait.until(lambda d: d.execute_script(
            "const c = document.getElementById('walk'); const p = c.getContext('2d').getImageData(0, 0, c.width, "
            "c.height).data; let s = 0; for (let i = 0; i < p.length; i += 4) s += p[i]; return s > 0;"))

        for field, value in (("r-size", "64"), ("r-frames", "12"), ("r-fps", "24")):
            box = d.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        d.find_element(By.ID, "render").click()
        wait.until(lambda d: d.find_element(By.ID, "r-status").get_attribute("data-state") in ("done", "failed"))
        assert d.find_element(By.ID, "r-status").get_attribute("data-state") == "done", \
            d.find_element(By.ID, "r-status").text
        # the browser must really load it: duration comes from the decoded stream's metadata
        wait.until(lambda d: d.execute_script("return document.getElementById('result').readyState >= 1"))
        duration = d.execute_script("return document.getElementById('result').duration")
        src = d.execute_script("return document.getElementById('result').currentSrc")
        assert duration == pytest.approx(12 / 24, abs=0.05), (duration, src)
        links = [a.get_attribute("download") for a in d.find_elements(By.CSS_SELECTOR, "#downloads a")]
        assert links[:3] == ["walk-e24-001.mp4", "walk-e24-001.mp4.json", "walk-e24-001.keys.npy"]
        assert "cppn-video walk --ckpt e24 --keyframes-file walk-e24-001.keys.npy" in \
            d.find_element(By.ID, "command").get_attribute("value")
        command = d.find_element(By.ID, "command").get_attribute("value")
        assert "--zoom 2" in command and f"--pan {pan_text}" in command, command
        assert read_video(out / "walk-e24-001.mp4").shape == (12, 64, 64)
        assert np.load(out / "walk-e24-001.keys.npy").shape == (3, 32)
        assert d.find_element(By.ID, "error").get_attribute("hidden") is not None  # no error shown
        shot = os.environ.get("CPPN_SCREENSHOT")
        if shot:
            time.sleep(0.5)  # let the video show its first frame
            d.save_screenshot(shot)
