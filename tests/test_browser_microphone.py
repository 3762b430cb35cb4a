"""The microphone widget in a real browser: JupyterLab in headless Chromium with a fake
microphone that plays a wav (Chromium's --use-file-for-fake-audio-capture), the widget's
Listen button clicked in the page, and the kernel asked what arrived.

What it checks, in the kernel (a cell prints a JSON report the test reads from the page):

- samples arrived through getUserMedia -> AudioWorklet -> binary comm buffers -> soxr: the
  recording is 16 kHz and complete (its length in 16 kHz samples equals the span of the page
  clock's capture timestamps, within 2%), and the file is in it: aligned by cross-correlation,
  the recording correlates with it (> 0.95; a 0.1% rate error would shift the word's end by
  64 samples and break that) at the file's own level (no gain control in the way);
- the live view heard the word of a file made from the offline dataset ("yes" with silence
  around it), and the page showed it.

It also measures the end-to-end delay, audio in to label out, and prints it (no timing
assert): for the first detection, from the moment the **end of the word** was captured to the
moment the page **showed the word** (the widget stamps the time in the animation frame after it
drew it). Capture time: the page clock when a chunk was complete is sent with each chunk; the
samples' own clock is anchored to the page clock by the chunk that arrived soonest
(:meth:`Microphone.capture_time`), so the word's last sample gets a time even when a busy page
handled its chunk late. Chromium's own input latency before the page is not included. Both
times are the page's clock (performance.timeOrigin + performance.now()); the kernel's share
(capture to decision, on the kernel's wall clock, same machine) is printed beside it.

The same notebook is then opened in Notebook 7 (/notebooks/...), Listen clicked with
AudioWorklet hidden from the page (the ScriptProcessor fallback captures), and the word must
appear there too. Last, a Chromium without a microphone, and one with a microphone whose
permission prompt goes unanswered (refused): the widget must say which, with the upload route.

Run: ``python -m pytest tests/test_browser_microphone.py -s`` (about a minute).
"""

from __future__ import annotations

import json
import os
import re
import time

import nbformat
import numpy as np
import pytest
from browser_harness import ARTIFACTS, Chromium, JupyterLab, LabPage, require_browser

import kwlesson as kw
from kwlesson.audio import read_wav, write_wav
from kwlesson.data import which_set

pytestmark = pytest.mark.browser

RATE = 16000
FILE_S = 5.0  # the fake microphone plays the file once: 1 s silence, "yes", 3 s silence
WORD_AT = RATE  # where the clip starts in the file

REPORT = r'''
import json
import numpy as np
from kwlesson.audio import read_wav

def report(view, path="fake_mic.wav", word_json="fake_mic.json"):
    """What arrived, aligned with the file the fake microphone plays (printed as one JSON line)."""
    meta = json.load(open(word_json))
    ref = read_wav(path)                      # the file, 16 kHz
    got = view.audio                          # what the kernel recorded, 16 kHz
    out = {"rate": view.rate, "samples": len(got), "chunks": view.chunks,
           "seconds": view.seconds, "how": view.how, "error": view.error,
           "dropped": view.dropped_chunks, "frame_gaps": view.frame_gaps,
           "missing_frames": view.missing_frames}
    times = list(view._chunk_times)
    if times:
        out["capture_span_s"] = (times[-1][1] - times[0][1]) / 1000
        out["capture_samples_span"] = times[-1][0] - times[0][0]
    if len(got) < len(ref):
        print("REPORT " + json.dumps(out)); return
    # Cross-correlate with the file: where it starts in the recording.
    n = len(got)
    size = 1 << int(np.ceil(np.log2(n + len(ref))))
    xc = np.fft.irfft(np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size)), size)[:n]
    first = int(np.argmax(xc[:n - len(ref) + 1]))
    out["file_at"] = first
    seg = got[first:first + len(ref)]
    out["file_correlation"] = float(np.corrcoef(seg, ref)[0, 1])
    # The word itself (its second of the file): a glitch of the fake device in the silence
    # around it should not decide the test, a wrong rate or lost samples would.
    w = slice(meta["at"], meta["at"] + 16000)
    out["correlation"] = float(np.corrcoef(seg[w], ref[w])[0, 1])
    out["gain"] = float(np.dot(seg[w], ref[w]) / np.dot(ref[w], ref[w]))
    # The first detection, and the copy of the word it heard: the last word end before it.
    dets = [d for d in view.detections if d.label == meta["word"]]
    out["heard"] = [(d.label, d.detection.score, d.detection.time_ms) for d in view.detections]
    if dets:
        d = dets[0]
        end_ms = d.detection.time_ms
        if first + meta["end"] <= end_ms * 16:
            word_end = first + meta["end"]
            word_onset = word_end - meta["end"] + meta["onset"]
            t_end = view.capture_time(word_end)
            t_onset = view.capture_time(word_onset)
            out.update(word_end_sample=word_end, capture_end_ms=t_end,
                       capture_onset_ms=t_onset, decided_ms=d.decided_ms, shown_ms=d.shown_ms,
                       window_end_sample=end_ms * 16)
    print("REPORT " + json.dumps(out))
'''


def _notebook() -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import kwlesson as kw\nkw.setup(seed=0)\n"
                                  "from kwlesson.microphone import live_view\n"
                                  "view = live_view(kw.quick_model())\nview"),
        nbformat.v4.new_code_cell(REPORT),
        nbformat.v4.new_code_cell("report(view)"),
        nbformat.v4.new_code_cell("from kwlesson.microphone import recorder\n"
                                  "rec = recorder('my_clips', word='yes')\nrec"),
        nbformat.v4.new_code_cell("import json\nprint('SAVED ' + json.dumps({'saved': [str(p) "
                                  "for p in rec.saved], 'clip': None if rec.clip is None else "
                                  "len(rec.clip), 'rate': rec.rate, 'error': rec.widget.error, "
                                  "'peak': None if rec.clip is None else "
                                  "float(abs(rec.clip).max())}))"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nbformat.writes(nb)


def _word_file(tmp_path) -> tuple[bytes, dict]:
    """1 s silence, a test-split "yes" of the offline dataset, 3 s silence; with the word's onset
    and end (samples from the start of the file). Of the test-split clips, the one the live
    view's settings hear most surely, wherever the 30 ms window grid falls (the browser starts
    the stream at any moment): its lowest score over grid offsets is the highest."""
    from kwlesson import synth
    from kwlesson.streaming import keras_stream_model, recognize_scores, stream_scores

    model = kw.quick_model()
    sm = keras_stream_model(model.model, model.labels, model.settings)
    data = synth.offline_dataset(progress=False)
    paths = sorted(p for p in (data / "yes").glob("*.wav")
                   if which_set(p.name, 10, 10) == "testing")

    def file_of(clip):
        audio = np.zeros(int(FILE_S * RATE), np.float32)
        audio[WORD_AT:WORD_AT + RATE] = clip
        return audio

    yes = model.labels.index("yes")

    def surety(clip):
        worst = 1.0
        for shift in range(0, 480, 80):  # 0-25 ms of extra silence in front
            times, scores = stream_scores(np.concatenate([np.zeros(shift, np.float32),
                                                          file_of(clip)]), sm)
            found = recognize_scores(times, scores, model.labels)  # the live view's defaults
            if [d.label for d in found] != ["yes"]:
                return 0.0
            # how far the 500 ms average of "yes" climbs above the 0.7 threshold
            worst = min(worst, float(np.convolve(scores[:, yes], np.ones(17) / 17).max()))
        return worst

    clips = [read_wav(p, clip_samples=RATE) for p in paths]
    clip = max(clips, key=surety)
    audio = file_of(clip)
    # Word onset / end: the first and last 10 ms frame within 30 dB of the loudest one.
    frames = clip[:RATE // 160 * 160].reshape(-1, 160)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() - 30)
    meta = {"word": "yes", "at": WORD_AT, "onset": WORD_AT + int(loud[0]) * 160,
            "end": WORD_AT + (int(loud[-1]) + 1) * 160}
    path = tmp_path / "fake_mic.wav"
    write_wav(path, audio, RATE)  # 16-bit PCM mono: what Chromium's fake capture reads
    return path.read_bytes(), meta


def _run_and_read(nb: LabPage, source: str, pattern: str) -> dict:
    """Run the cell whose source contains ``source`` (Shift+Enter) and read the JSON its output
    prints after the prefix in ``pattern``."""
    cell = nb.cell_locator(source)
    cell.locator(".jp-InputArea-editor").click()
    nb.page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(pattern, nb.cell_text(source))
        if m:
            return json.loads(m.group(1))
        nb.page.wait_for_timeout(250)
    raise TimeoutError(f"no answer from the kernel: {nb.cell_text(source)!r}")


def _report(nb: LabPage) -> dict:
    return _run_and_read(nb, "report(view)", r"REPORT (\{.*\})")


def test_the_fake_microphone_reaches_the_kernel_and_the_word_is_heard(tmp_path):
    require_browser()
    wav, meta = _word_file(tmp_path)
    # Chromium reads the file itself (from tmp_path). It loops it unless the name ends in
    # %noloop, but its loops are not faithful copies (measured: the second copy correlates
    # 0.3 with the file, the first 0.9995), so it plays once and silence follows.
    fake = tmp_path / "fake_mic.wav"
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake}%noloop",
            "--autoplay-policy=no-user-gesture-required"]
    files = {"mic.ipynb": _notebook(), "fake_mic.wav": wav, "fake_mic.json": json.dumps(meta)}
    with JupyterLab(notebooks=[], extra_files=files) as lab, \
            Chromium(extra_args=args, permissions=["microphone"]) as browser:
        page = browser.new_page()
        nb = LabPage.open(page, lab, "mic.ipynb")
        nb.run_all(timeout=180)
        nb.assert_no_errors()
        widget = page.locator(".kwl-mic").first
        try:
            widget.wait_for(timeout=120_000)
        except Exception:
            nb.screenshot("microphone_no_widget", full_page=True)
            raise AssertionError(f"the widget did not appear: {nb.cells()[:1]}") from None
        assert "no audio yet" in widget.locator(".kwl-status").inner_text()
        widget.locator("button.kwl-start").click()
        page.wait_for_function(
            "() => document.querySelector('.kwl-mic')?.dataset.heard === 'yes'",
            timeout=30_000)
        page.wait_for_timeout(300)
        nb.screenshot("microphone_live_view", locator=nb.cell_locator("live_view("))
        heard_text = widget.locator(".kwl-heard").inner_text()
        page.wait_for_timeout(int(FILE_S * 1000))  # the whole file and some silence after it
        widget.locator("button.kwl-stop").click()
        page.wait_for_timeout(500)
        report = _report(nb)

        # The recorder: a fixed-length recording (the kernel stops it and tells the page), then
        # Save clip.
        rec = page.locator(".kwl-mic").nth(1)
        rec.locator("button.kwl-clip").click()
        page.wait_for_function(
            "() => /recorded 1\\.5 s/.test(document.querySelectorAll('.kwl-mic')[1]"
            "?.querySelector('.kwl-status')?.textContent)", timeout=30_000)
        page.wait_for_function(
            "() => document.querySelectorAll('.kwl-mic')[1].querySelector('.kwl-stop').disabled",
            timeout=10_000)  # the page stopped the microphone when the kernel said so
        rec.locator("button.kwl-save").click()
        page.wait_for_timeout(1000)
        saved = _run_and_read(nb, "print('SAVED '", r"SAVED (\{.*\})")
        nb.assert_no_errors()
        assert browser.console == [] or not any("kwl" in c for c in browser.console), \
            browser.console

        # Notebook 7: the same widget, the same word
        page7 = browser.new_page()
        page7.goto(f"{lab.url}notebooks/mic.ipynb?token={lab.token}",
                   wait_until="domcontentloaded")
        page7.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        notebook7 = _notebook7_heard(page7)

    # No microphone, then a microphone but the permission refused (headless Chromium refuses a
    # prompt nobody answers): the widget must say which, and point to the upload route.
    refusals = {}
    with JupyterLab(notebooks=[], extra_files=files) as lab:
        for case, flags in (("none", []), ("refused", ["--use-fake-device-for-media-stream"])):
            with Chromium(extra_args=flags) as browser:
                nb = LabPage.open(browser.new_page(), lab, "mic.ipynb")
                nb.run_all(timeout=180)
                widget = nb.page.locator(".kwl-mic").first
                widget.wait_for(timeout=120_000)
                widget.locator("button.kwl-start").click()
                error = widget.locator(".kwl-error")
                error.wait_for(state="visible", timeout=30_000)
                refusals[case] = (error.inner_text(),
                                  widget.locator(".kwl-status").inner_text())
                nb.screenshot(f"microphone_{case}", locator=nb.cell_locator("live_view("))

    print(f"\nbrowser microphone report: {json.dumps(report)}\nrecorder: {json.dumps(saved)}")
    assert report["error"] == ""
    assert report["how"] == "AudioWorklet"
    # samples arrived: as many as the capture clock says, at 16 kHz
    assert report["samples"] > FILE_S * RATE
    span = report["capture_span_s"]
    assert abs(report["capture_samples_span"] / RATE - span) < 0.02 * span + 0.15
    assert report["correlation"] > 0.95, report
    assert 0.9 < report["gain"] < 1.1, "no gain control between the file and the kernel"
    # the live view heard the word, and the page showed it
    assert heard_text == "“yes”"
    assert [h[0] for h in report["heard"]][:1] == ["yes"]
    assert report["shown_ms"] is not None and report["capture_end_ms"] is not None
    delay_end = report["shown_ms"] - report["capture_end_ms"]
    delay_onset = report["shown_ms"] - report["capture_onset_ms"]
    kernel = report["decided_ms"] - report["capture_end_ms"]
    audio_ms = (report["window_end_sample"] - report["word_end_sample"]) / 16
    print(f"end-to-end delay, end of the word captured -> label shown: {delay_end:.0f} ms "
          f"(from the word's onset: {delay_onset:.0f} ms; capture -> kernel decision: "
          f"{kernel:.0f} ms, of which {audio_ms:.0f} ms is audio after the word that "
          f"RecognizeCommands waited for; browser rate {report['rate']:g} Hz, "
          f"{report['chunks']} chunks, load {os.getloadavg()[0]:.2f})")
    assert notebook7 == ("yes", "ScriptProcessor")
    # the fixed-length recording and its saved clip
    assert saved["error"] == "" and saved["clip"] == 24000 and saved["rate"] == report["rate"]
    assert len(saved["saved"]) == 1
    assert re.fullmatch(r"my_clips/yes/[0-9a-f]{8}_nohash_0\.wav", saved["saved"][0]), saved
    for case, (message, status) in refusals.items():
        print(f"{case}: the widget says: {message}")
        assert message.startswith("No microphone:") and "upload_and_label" in message
        assert status.startswith("No microphone:")  # the one-line text form says it too
    assert "found none" in refusals["none"][0]
    assert "not allowed" in refusals["refused"][0]


def _notebook7_heard(page) -> tuple[str, str]:
    """Run all cells in Notebook 7 (Run menu), press Listen with AudioWorklet hidden (so the
    ScriptProcessor fallback captures), return the word the page shows and how it captured."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.get_by_text("Run", exact=True).first.click()
    page.get_by_text("Run All Cells", exact=True).first.click()
    widget = page.locator(".kwl-mic").first
    widget.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => /no audio yet/.test(document.querySelector('.kwl-mic .kwl-status')?.textContent)",
        timeout=120_000)
    page.evaluate("() => { window.AudioWorkletNode = undefined; }")
    widget.locator("button.kwl-start").click()
    page.wait_for_function(
        "() => document.querySelector('.kwl-mic')?.dataset.heard === 'yes'", timeout=30_000)
    word, how = page.evaluate("() => [document.querySelector('.kwl-mic').dataset.heard, "
                              "document.querySelector('.kwl-mic').dataset.how]")
    assert page.locator("#main-panel, .jp-NotebookApp, body[data-notebook='notebooks']").count(), \
        "not Notebook 7's page"
    page.screenshot(path=str(ARTIFACTS / "microphone_notebook7.png"))
    widget.locator("button.kwl-stop").click()
    return word, how
