"""`maa ui` in a real browser: Debian's headless Chromium driven by Selenium through the system
chromedriver (`make browser-deps` installs both; nothing is downloaded at run time).

Starts `maa ui` on a free port with the tiny model, types a prompt, clicks Generate, waits for the
audio player, downloads the wav it plays and checks its record; also checks what the server hands
out (a `../` path and an absolute path outside --out-dir: refused) and the HTTP API through
gradio_client. MAA_UI_SCREENSHOT=path.png keeps the page's screenshot (the README's)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from maa.infer.options import read_record

pytestmark = [pytest.mark.slow]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.fixture
def server(tmp_path, model_dir):
    pytest.importorskip("gradio")
    port, out = _free_port(), tmp_path / "ui_out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "maa.commands.cli", "ui", "--model", str(model_dir), "--out-dir", str(out),
                             "--port", str(port), "--device", "cpu"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while _status(url + "/") != 200:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("maa ui did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(1)
    yield url, out
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_generate_in_chromium_and_the_server_fence(server, tmp_path):
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("no /usr/bin/chromium + chromedriver (make browser-deps)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, out = server
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 300)
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea")))
        box.send_keys("a bell rings in the rain")
        dur = driver.find_elements(By.CSS_SELECTOR, "input[type=number]")[0]  # duration: short, the CPU is shared
        dur.clear()
        dur.send_keys("1")
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        audio = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audio0 audio[src], #audio0 a[download]"))
        src = audio[0].get_attribute("src") or audio[0].get_attribute("href")
        time.sleep(2)  # the spectrogram image and the history load after the player
        shot = Path(os.environ.get("MAA_UI_SCREENSHOT") or tmp_path / "page.png")
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    got = tmp_path / "got.wav"
    got.write_bytes(urllib.request.urlopen(src, timeout=30).read())
    rec = read_record(got)
    assert rec["prompt"] == "a bell rings in the rain" and rec["seed"] == 0 and rec["duration"] < 1.2
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 1 and read_record(wavs[0]) == rec and wavs[0].with_suffix(".png").exists()
    assert json.loads((out / "manifest.jsonl").read_text().splitlines()[0])["path"] == str(wavs[0])
    # the server hands out files under --out-dir only
    assert _status(f"{url}/gradio_api/file={wavs[0].resolve()}") == 200
    (tmp_path / "secret.txt").write_text("no")
    for bad in [str(tmp_path / "secret.txt"), "/etc/passwd", f"{out.resolve()}/../secret.txt", "../secret.txt"]:
        assert _status(f"{url}/gradio_api/file={bad}") in (403, 404), bad
    # the same function over HTTP, as the README shows it
    from gradio_client import Client

    client = Client(url + "/", verbose=False)
    files, records = client.predict(prompt="rain", duration=1, steps=2, candidates=2, init_audio=None, api_name="/generate")
    assert [read_record(f) for f in files] == records and [r["seed"] for r in sorted(records, key=lambda r: r["seed"])] == [0, 1]
    name = Path(files[0]).name  # the client's copy keeps the server's file name
    assert read_record(out / name) == records[0]
    files2, records2 = client.predict(file=name, api_name="/replay")
    assert records2[0]["replay_of"] == name and records2[0]["seed"] == records[0]["seed"]
