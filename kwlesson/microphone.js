// The browser half of kwlesson.microphone (an anywidget ES module; no build step).
//
// It captures the microphone with getUserMedia (no echo cancellation, noise suppression or
// automatic gain: the model should hear the room as it is), collects float32 samples in an
// AudioWorklet (a ScriptProcessor where AudioWorklet is missing) and sends them to the kernel in
// chunks of about `chunk_ms`, as binary buffers, with the context's sample rate and the page
// clock at which each chunk was complete. The kernel resamples, records and recognises; this side
// only draws what the kernel sends back: the rolling features, the scores and the word heard.

const WORKLET = `
class KwlessonCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = options.processorOptions.size;
    this.buf = new Float32Array(this.size);
    this.n = 0;
    this.first = 0;
  }
  process(inputs) {
    const input = inputs[0];
    // An input with no channels is a source that is not playing (e.g. a track that ended):
    // record silence, so the samples keep pace with the clock.
    const ch = input && input.length > 0 ? input[0] : new Float32Array(128);
    {
      for (let i = 0; i < ch.length; i++) {
        if (this.n === 0) this.first = currentFrame + i;
        this.buf[this.n++] = ch[i];
        if (this.n === this.size) {
          this.port.postMessage({ frame: this.first, samples: this.buf }, [this.buf.buffer]);
          this.buf = new Float32Array(this.size);
          this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("kwlesson-capture", KwlessonCapture);
`;

const STYLE = `
.kwl-mic { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; max-width: 640px; }
.kwl-mic button { margin: 2px 4px 2px 0; padding: 3px 10px; cursor: pointer; }
.kwl-mic input.kwl-word { width: 110px; margin: 0 4px; }
.kwl-mic .kwl-status { margin: 4px 0; color: var(--jp-ui-font-color1, #222); }
.kwl-mic .kwl-error { margin: 4px 0; padding: 6px 8px; background: #fdecea; color: #611a15;
  border-left: 4px solid #d93025; white-space: pre-wrap; }
.kwl-mic canvas { display: block; background: #111; margin: 4px 0; width: 100%; }
.kwl-mic .kwl-heard { font-size: 40px; font-weight: bold; height: 52px; line-height: 52px;
  text-align: center; color: #0b8043; transition: opacity 0.6s; }
.kwl-mic .kwl-bar { display: flex; align-items: center; height: 16px; }
.kwl-mic .kwl-bar span.kwl-name { width: 90px; text-align: right; padding-right: 6px; }
.kwl-mic .kwl-bar div.kwl-fill { height: 11px; background: #4285f4; }
.kwl-mic .kwl-bar.kwl-top div.kwl-fill { background: #0b8043; }
`;

// One microphone per widget: of several views of the same widget (the same output shown twice,
// or a second browser tab), the last one rendered answers the kernel's start / stop commands,
// and only one captures at a time.
const ACTIVE = new WeakMap();
const CAPTURING = new WeakMap();

function now() {
  return performance.timeOrigin + performance.now();
}

function colour(v) {
  // v in [0, 1] -> a dark-blue .. yellow ramp (viridis-like, cheap)
  const r = Math.round(255 * Math.min(1, Math.max(0, 1.6 * v - 0.5)));
  const g = Math.round(255 * Math.min(1, Math.max(0, 1.1 * v)));
  const b = Math.round(255 * Math.min(1, Math.max(0, 0.15 + 0.9 * v * (1 - v) * 2)));
  return [r, g, b];
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "kwl-mic";
  const style = document.createElement("style");
  style.textContent = STYLE;
  root.appendChild(style);

  const bar = document.createElement("div");
  const startBtn = document.createElement("button");
  const stopBtn = document.createElement("button");
  const clipBtn = document.createElement("button");
  const wordBox = document.createElement("input");
  const saveBtn = document.createElement("button");
  startBtn.className = "kwl-start";
  stopBtn.className = "kwl-stop";
  clipBtn.className = "kwl-clip";
  saveBtn.className = "kwl-save";
  wordBox.className = "kwl-word";
  wordBox.placeholder = "word";
  stopBtn.textContent = "■ Stop";
  saveBtn.textContent = "Save clip";
  bar.append(startBtn, stopBtn, clipBtn, wordBox, saveBtn);
  const status = document.createElement("div");
  status.className = "kwl-status";
  const error = document.createElement("div");
  error.className = "kwl-error";
  const heard = document.createElement("div");
  heard.className = "kwl-heard";
  const canvas = document.createElement("canvas");
  canvas.width = 400; // frames: 4 s at 10 ms
  canvas.height = 80;
  const bars = document.createElement("div");
  root.append(bar, error, heard, canvas, bars, status);
  el.appendChild(root);

  // ---- capture ---------------------------------------------------------------------------
  let cap = null; // {ctx, stream, node, source, seq}
  const token = {};
  ACTIVE.set(model, token);

  function send(msg, buffers) {
    model.send(msg, undefined, buffers || []);
  }

  function fail(err, where) {
    const name = (err && err.name) || "Error";
    const message = (err && err.message) || String(err);
    send({ type: "error", name, message, where, secure: window.isSecureContext });
    stopCapture(false);
  }

  async function startCapture(seconds) {
    if (cap) return;
    const other = CAPTURING.get(model);
    if (other && other !== token) {
      status.textContent = "another view of this widget is using the microphone: stop it there";
      return;
    }
    CAPTURING.set(model, token);
    const md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) {
      fail({ name: window.isSecureContext ? "NotSupportedError" : "SecurityError",
             message: window.isSecureContext ? "this browser has no getUserMedia"
               : "the page is not a secure context (https or localhost), so the browser hides the microphone" },
           "getUserMedia");
      return;
    }
    cap = { starting: true, seq: 0 };
    let stream;
    try {
      stream = await md.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
        noiseSuppression: false, autoGainControl: false } });
    } catch (err) {
      cap = null;
      fail(err, "getUserMedia");
      return;
    }
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const ctx = new Ctx();
      if (ctx.state === "suspended") await ctx.resume();
      const rate = ctx.sampleRate;
      const size = Math.max(128, Math.round(rate * model.get("chunk_ms") / 1000));
      const source = ctx.createMediaStreamSource(stream);
      const sink = ctx.createGain();
      sink.gain.value = 0; // processors only run when connected to the output; keep it silent
      sink.connect(ctx.destination);
      cap = { ctx, stream, source, sink, seq: 0, rate, size };
      const onChunk = (frame, samples) => {
        if (!cap) return;
        const t = now();
        send({ type: "chunk", rate, seq: cap.seq++, frame, t, n: samples.length },
             [samples.buffer]);
      };
      let how = "AudioWorklet";
      if (ctx.audioWorklet && window.AudioWorkletNode) {
        const url = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
        await ctx.audioWorklet.addModule(url);
        URL.revokeObjectURL(url);
        const node = new AudioWorkletNode(ctx, "kwlesson-capture",
          { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1,
            channelCountMode: "explicit", processorOptions: { size } });
        node.port.onmessage = (e) => onChunk(e.data.frame, e.data.samples);
        source.connect(node);
        node.connect(sink);
        cap.node = node;
      } else {
        how = "ScriptProcessor";
        const node = ctx.createScriptProcessor(4096, 1, 1);
        let frame = 0;
        node.onaudioprocess = (e) => {
          const data = new Float32Array(e.inputBuffer.getChannelData(0));
          onChunk(frame, data);
          frame += data.length;
        };
        source.connect(node);
        node.connect(sink);
        cap.node = node;
      }
      root.dataset.how = how;
      const track = stream.getAudioTracks()[0];
      send({ type: "start", rate, seconds, how, device: track ? track.label : "",
             t: now() });
    } catch (err) {
      stream.getTracks().forEach((tr) => tr.stop());
      cap = null;
      fail(err, "AudioContext");
    }
  }

  function stopCapture(tell) {
    const c = cap;
    cap = null;
    if (CAPTURING.get(model) === token) CAPTURING.delete(model);
    if (c && c.stream) {
      try { c.node && c.node.disconnect(); } catch (e) { /* already gone */ }
      try { c.source && c.source.disconnect(); } catch (e) { /* already gone */ }
      c.stream.getTracks().forEach((tr) => tr.stop());
      c.ctx && c.ctx.close();
      if (tell) send({ type: "stop", t: now() });
    }
    update();
  }

  startBtn.addEventListener("click", () => startCapture(null).then(update));
  clipBtn.addEventListener("click", () => startCapture(model.get("clip_seconds")).then(update));
  stopBtn.addEventListener("click", () => stopCapture(true));
  saveBtn.addEventListener("click", () => send({ type: "save" }));
  wordBox.addEventListener("change", () => {
    model.set("word", wordBox.value);
    model.save_changes();
  });

  // ---- what the kernel sends back --------------------------------------------------------
  const ctx2d = canvas.getContext("2d");
  let history = []; // the frames on screen, oldest first (one Float32Array per frame)
  function drawFrames(frames, bins) {
    const n = frames.length / bins;
    for (let k = 0; k < n; k++) history.push(frames.slice(k * bins, (k + 1) * bins));
    const w = canvas.width;
    if (history.length > w) history = history.slice(history.length - w);
    if (canvas.height !== bins * 2) canvas.height = bins * 2;
    const h = canvas.height;
    // Each feature bin scaled to its own range over what is on screen (MFCC bins differ by
    // orders of magnitude); a flat bin (digital silence) stays dark instead of showing noise.
    const lo = new Float32Array(bins).fill(Infinity), hi = new Float32Array(bins).fill(-Infinity);
    for (const f of history) for (let b = 0; b < bins; b++) {
      if (f[b] < lo[b]) lo[b] = f[b];
      if (f[b] > hi[b]) hi[b] = f[b];
    }
    const img = ctx2d.createImageData(w, h);
    const offset = w - history.length;
    history.forEach((f, col) => {
      for (let b = 0; b < bins; b++) {
        const range = hi[b] - lo[b];
        const v = range > 1e-6 ? (f[b] - lo[b]) / range : 0;
        const [r, g, bl] = colour(v);
        for (let y = 0; y < 2; y++) { // low bins at the bottom, two pixels per bin
          const i = 4 * ((h - 1 - (2 * b + y)) * w + offset + col);
          img.data[i] = r; img.data[i + 1] = g; img.data[i + 2] = bl; img.data[i + 3] = 255;
        }
      }
    });
    ctx2d.putImageData(img, 0, 0);
  }

  model.on("msg:custom", (msg, buffers) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "frames" && buffers && buffers.length) {
      const b = buffers[0];
      const view = b instanceof DataView ? b : new DataView(b.buffer || b, b.byteOffset || 0, b.byteLength);
      drawFrames(new Float32Array(view.buffer, view.byteOffset, view.byteLength / 4), msg.bins);
    } else if (msg.type === "command" && ACTIVE.get(model) === token) {
      if (msg.action === "start") startCapture(msg.seconds ?? null).then(update);
      else if (msg.action === "stop") stopCapture(false);
    }
  });

  let fade = null;
  function showHeard() {
    const h = model.get("heard") || {};
    if (!h.label) { heard.textContent = ""; return; }
    heard.textContent = h.label.startsWith("_") ? h.label.replace(/_/g, " ").trim() : `“${h.label}”`;
    heard.style.color = h.label.startsWith("_") ? "#888" : "#0b8043";
    heard.style.opacity = 1;
    clearTimeout(fade);
    fade = setTimeout(() => { heard.style.opacity = 0.25; }, 1500);
    // When the word appears in the page (after layout): the end of the audio-in -> label-out
    // delay the browser test measures.
    requestAnimationFrame(() => {
      const t = now();
      root.dataset.heard = h.label;
      root.dataset.heardN = h.n;
      root.dataset.heardAt = t;
      send({ type: "shown", n: h.n, session: h.session, label: h.label, t });
    });
  }

  function drawScores() {
    const labels = model.get("labels") || [];
    const scores = model.get("scores") || [];
    if (!labels.length) { bars.style.display = "none"; return; }
    bars.style.display = "";
    if (bars.childElementCount !== labels.length) {
      bars.replaceChildren(...labels.map((name) => {
        const row = document.createElement("div");
        row.className = "kwl-bar";
        const span = document.createElement("span");
        span.className = "kwl-name";
        span.textContent = name;
        const fill = document.createElement("div");
        fill.className = "kwl-fill";
        row.append(span, fill);
        return row;
      }));
    }
    let top = -1, best = -1;
    scores.forEach((s, i) => { if (s > best) { best = s; top = i; } });
    [...bars.children].forEach((row, i) => {
      const s = scores[i] || 0;
      row.lastChild.style.width = `${Math.round(300 * s)}px`;
      row.classList.toggle("kwl-top", i === top);
      row.title = `${labels[i]}: ${s.toFixed(2)}`;
    });
  }

  function update() {
    const live = model.get("show_live");
    const save = model.get("show_save");
    startBtn.textContent = live ? "● Listen" : "● Record";
    clipBtn.textContent = `Record ${model.get("clip_seconds")} s`;
    startBtn.disabled = clipBtn.disabled = !!cap;
    stopBtn.disabled = !cap;
    wordBox.style.display = saveBtn.style.display = save ? "" : "none";
    if (document.activeElement !== wordBox) wordBox.value = model.get("word");
    canvas.style.display = heard.style.display = live ? "" : "none";
    status.textContent = model.get("status");
    const e = model.get("error");
    error.textContent = e;
    error.style.display = e ? "" : "none";
    drawScores();
  }

  model.on("change:status", update);
  model.on("change:error", update);
  model.on("change:word", update);
  model.on("change:scores", drawScores);
  model.on("change:labels", drawScores);
  model.on("change:heard", showHeard);
  update();
  return () => {
    stopCapture(true);
    if (ACTIVE.get(model) === token) ACTIVE.delete(model);
  };
}

export default { render };
