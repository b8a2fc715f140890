// cppn-video serve: the page. One WebSocket carries live frames (binary) and render progress (JSON);
// the JSON API does the rest. At most one preview is in flight: while dragging, the newest position waits
// and goes out when the previous frame arrives, so frames never queue up behind the slider.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADER = 12; // u32 id, u16 width, u16 height, u16 count, u8 kind, pad (little-endian)
const S = {
  ckpt: null, info: null, base: null, sliders: [], keys: [], seedStart: 0,
  ws: null, nextId: 1, inflight: 0, dirty: false, walkId: 0, walkTimer: null, job: null,
};

function showError(msg) {
  const el = $("error");
  el.textContent = msg || "";
  el.hidden = !msg;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)};
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({error: `HTTP ${res.status}`}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

// ------------------------------------------------------------------ latent state

function currentZ() {
  const z = S.base.slice();
  S.sliders.forEach((s, i) => {
    const d = S.info.directions[i], k = s * S.info.spread[i];
    for (let j = 0; j < z.length; j++) z[j] += k * d[j];
  });
  return z;
}

function setBase(z, where) {
  S.base = z.slice();
  S.sliders = S.sliders.map(() => 0);
  document.querySelectorAll("#sliders input").forEach((el) => { el.value = 0; });
  $("where").textContent = where;
  requestPreview();
}

// ------------------------------------------------------------------ live preview

function drawGray(canvas, bytes, w, h) {
  // grey levels through the chosen palette's lookup table (the server's, so a preview is coloured as the render)
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const px = img.data;
  const lut = S.palettes && S.palettes[$("palette").value];
  for (let i = 0, j = 0; i < w * h; i++, j += 4) {
    const v = bytes[i];
    if (lut) { const c = lut[v]; px[j] = c[0]; px[j + 1] = c[1]; px[j + 2] = c[2]; }
    else { px[j] = v; px[j + 1] = v; px[j + 2] = v; }
    px[j + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function requestPreview() {
  S.dirty = true;
  pump();
}

function pump() {
  if (S.inflight || !S.dirty || !S.ws || S.ws.readyState !== WebSocket.OPEN || !S.base) return;
  S.dirty = false;
  S.inflight = S.nextId++;
  S.ws.send(JSON.stringify({type: "preview", id: S.inflight, ckpt: S.ckpt, z: currentZ(),
                            size: +$("preview-size").value, invert: $("invert").checked, ...cameraFields()}));
}

// ------------------------------------------------------------------ camera (the preview shows its first frame)

function cameraFields() {
  const out = {};
  for (const key of ["zoom", "pan", "rotate"]) {
    const v = $(`cam-${key}`).value.trim();
    if (v) out[key] = v;
  }
  return out;
}

function constantOf(id, fallback) {
  // the field's plain constant (n numbers), the fallback when empty, null when it holds a ramp or keyframes
  const t = $(id).value.trim();
  if (!t) return fallback;
  if (/[=:]/.test(t)) return null;
  const parts = t.replace(/^\((.*)\)$/, "$1").split(",").map(Number);
  return parts.length === fallback.length && parts.every(Number.isFinite) ? parts : null;
}

function cameraControls(canvas) {
  // drag: pan (the picture follows the pointer); wheel: zoom; both edit constant fields only
  let last = null;
  canvas.onpointerdown = (e) => { last = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); };
  canvas.onpointerup = canvas.onpointercancel = () => { last = null; };
  canvas.onpointermove = (e) => {
    if (!last) return;
    const pan = constantOf("cam-pan", [0, 0]), zoom = constantOf("cam-zoom", [1]), rot = constantOf("cam-rotate", [0]);
    if (!pan || !zoom || !rot) return;
    const perCss = canvas.width / canvas.getBoundingClientRect().width;
    const pitch = 16 / Math.max(1, canvas.width - 1) / zoom[0];  // plane units per pixel (the preview's scale 8)
    const dx = (e.clientX - last[0]) * perCss * pitch, dy = (e.clientY - last[1]) * perCss * pitch;
    const a = rot[0] * Math.PI / 180, c = Math.cos(a), s = Math.sin(a);
    pan[0] -= c * dx - s * dy;
    pan[1] -= s * dx + c * dy;
    $("cam-pan").value = `${+pan[0].toFixed(6)},${+pan[1].toFixed(6)}`;
    last = [e.clientX, e.clientY];
    requestPreview();
  };
  canvas.onwheel = (e) => {
    const zoom = constantOf("cam-zoom", [1]);
    if (!zoom) return;
    e.preventDefault();
    $("cam-zoom").value = String(+(zoom[0] * Math.exp(-e.deltaY / 500)).toPrecision(6));
    requestPreview();
  };
}

function onFrame(buf) {
  const v = new DataView(buf);
  const id = v.getUint32(0, true), w = v.getUint16(4, true), h = v.getUint16(6, true);
  const n = v.getUint16(8, true), kind = v.getUint8(10);
  const pixels = new Uint8Array(buf, HEADER);
  if (kind === 0) {
    drawGray($("preview"), pixels, w, h);
    $("preview").dataset.frame = String(id);
    if (id === S.inflight) { S.inflight = 0; pump(); }
  } else if (id === S.walkId) {
    playWalk(pixels, w, h, n);
  }
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { $("conn").textContent = "live"; S.inflight = 0; requestPreview(); };
  ws.onclose = () => { $("conn").textContent = "disconnected: reload the page"; S.ws = null; };
  ws.onmessage = (ev) => {
    if (ev.data instanceof ArrayBuffer) { onFrame(ev.data); return; }
    const msg = JSON.parse(ev.data);
    if (msg.type === "job") showJob(msg.job);
    else if (msg.type === "error") {
      showError(msg.error);
      if (msg.id === S.inflight) S.inflight = 0;
    }
  };
  S.ws = ws;
}

// ------------------------------------------------------------------ checkpoint, classes, sliders, seeds

async function loadCheckpoint(id) {
  showError("");
  S.ckpt = id;
  S.info = await api(`/api/checkpoint/${encodeURIComponent(id)}`);
  const classes = $("classes");
  classes.innerHTML = "";
  S.info.class_latents.forEach((z, c) => {
    const b = document.createElement("button");
    b.id = `class-${c}`; b.textContent = String(c); b.title = `class mean of ${c}`;
    b.onclick = () => setBase(z, `class ${c} (mean)`);
    classes.appendChild(b);
  });
  const sliders = $("sliders");
  sliders.innerHTML = "";
  S.sliders = S.info.directions.map(() => 0);
  S.info.directions.forEach((_, i) => {
    const label = document.createElement("label");
    label.innerHTML = `PC${i + 1} <input id="dir-${i}" type="range" min="-3" max="3" step="0.02" value="0">`;
    sliders.appendChild(label);
    label.querySelector("input").addEventListener("input", (ev) => { S.sliders[i] = +ev.target.value; requestPreview(); });
  });
  if (S.keys.length && S.keys[0].z.length !== S.info.z_dim) S.keys = [];
  renderKeys();
  await loadSeeds();
  if (!S.base || S.base.length !== S.info.z_dim) setBase(S.info.class_latents[0], "class 0 (mean)");
  else requestPreview();
}

async function loadSeeds() {
  const lo = S.seedStart, hi = lo + 15;
  $("seeds-range").textContent = `${lo}–${hi}`;
  const data = await api("/api/thumbs", {ckpt: S.ckpt, seeds: `${lo}-${hi}`, size: 72, invert: $("invert").checked});
  const grid = $("seeds");
  grid.innerHTML = "";
  data.thumbs.forEach((t) => {
    const img = document.createElement("img");
    img.src = t.png; img.alt = `seed ${t.seed}`; img.title = `seed ${t.seed}`; img.dataset.seed = t.seed;
    img.className = "thumb";
    img.onclick = () => {
      grid.querySelectorAll("img").forEach((el) => el.classList.remove("chosen"));
      img.classList.add("chosen");
      setBase(t.z, `seed ${t.seed}`);
    };
    grid.appendChild(img);
  });
}

// ------------------------------------------------------------------ keyframes

function addKey() {
  const thumb = document.createElement("canvas");
  thumb.width = 64; thumb.height = 64;
  thumb.getContext("2d").drawImage($("preview"), 0, 0, 64, 64);
  S.keys.push({z: currentZ(), label: $("where").textContent, thumb});
  renderKeys();
}

function renderKeys() {
  const ol = $("keys");
  ol.innerHTML = "";
  S.keys.forEach((k, i) => {
    const li = document.createElement("li");
    li.className = "key"; li.title = k.label;
    li.appendChild(k.thumb);
    const bar = document.createElement("span");
    const mk = (text, title, fn, disabled) => {
      const b = document.createElement("button");
      b.textContent = text; b.title = title; b.disabled = disabled; b.onclick = fn; bar.appendChild(b);
    };
    mk("‹", "move earlier", () => { [S.keys[i - 1], S.keys[i]] = [S.keys[i], S.keys[i - 1]]; renderKeys(); }, i === 0);
    mk("×", "delete", () => { S.keys.splice(i, 1); renderKeys(); }, false);
    mk("›", "move later", () => { [S.keys[i + 1], S.keys[i]] = [S.keys[i], S.keys[i + 1]]; renderKeys(); },
       i === S.keys.length - 1);
    li.appendChild(bar);
    ol.appendChild(li);
  });
  $("key-count").textContent = String(S.keys.length);
}

function walkSettings() {
  const hold = +$("hold").value;
  return {ease: $("ease").value, interp: $("interp").value, loop: $("loop").checked, pace: $("pace").value,
          ...(hold > 0 ? {hold: `${hold}s`} : {}), ...cameraFields()};
}

// ------------------------------------------------------------------ soundtrack

async function loadAudio(file) {
  showError("");
  if (!file) { S.audio = null; $("wave").hidden = $("sound-preview").hidden = true; $("tempo").textContent = ""; return; }
  try {
    const res = await fetch(`/api/audio?name=${encodeURIComponent(file.name)}`, {
      method: "POST", headers: {"Content-Type": file.type || "application/octet-stream"}, body: await file.arrayBuffer()});
    const data = await res.json().catch(() => ({error: `HTTP ${res.status}`}));
    if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
    S.audio = data;
  } catch (e) { S.audio = null; showError(e.message); return; }
  $("sound-preview").src = URL.createObjectURL(file);
  $("sound-preview").hidden = false;
  $("tempo").textContent = S.audio.tempo ? `${S.audio.tempo.toFixed(1)} BPM, ${S.audio.beats.length} beats, ` +
    `${S.audio.seconds.toFixed(1)} s` : `${S.audio.problem || "no beat"} (${S.audio.seconds.toFixed(1)} s)`;
  drawWave();
}

function drawWave() {
  // the waveform's peaks, the beats as marks, and where each keyframe lands at the render's fps when synced
  const c = $("wave"), g = c.getContext("2d"), a = S.audio;
  c.hidden = !a;
  if (!a) return;
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = "#888";
  a.peaks.forEach((p, i) => {
    const x = i * c.width / a.peaks.length, h = p * (c.height - 8);
    g.fillRect(x, (c.height - h) / 2, Math.max(1, c.width / a.peaks.length), h);
  });
  g.fillStyle = "#d33";
  const every = Math.max(1, +$("bpk").value || 1);
  a.beats.forEach((t, i) => {
    const x = t / a.seconds * c.width;
    g.fillRect(x, 0, 1, $("sync").value === "beats" && i % every === 0 ? c.height : 6);
  });
}

function audioSettings() {
  if (!S.audio) return {};
  const react = $("react").value.trim();
  return {audio: S.audio.audio, ...($("sync").value ? {sync: $("sync").value} : {}),
          beats_per_keyframe: Math.max(1, +$("bpk").value || 1), ...(react ? {react} : {})};
}

function startWalkPreview() {
  if (!S.keys.length) { showError("add a keyframe first"); return; }
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return;
  stopWalk();
  S.walkId = S.nextId++;
  const frames = Math.min(240, Math.max(2, 16 * S.keys.length));
  S.ws.send(JSON.stringify({type: "walk", id: S.walkId, ckpt: S.ckpt, keyframes: S.keys.map((k) => k.z),
                            frames, size: 128, invert: $("invert").checked, ...walkSettings()}));
}

function playWalk(pixels, w, h, n) {
  stopWalk();
  let i = 0;
  const fps = +$("r-fps").value || 24;
  if (S.audio) { $("sound-preview").currentTime = 0; $("sound-preview").play().catch(() => {}); }
  S.walkTimer = setInterval(() => {
    drawGray($("walk"), pixels.subarray(i * w * h, (i + 1) * w * h), w, h);
    i += 1;
    if (i >= n) { if ($("loop").checked) i = 0; else stopWalk(); }
  }, 1000 / fps);
}

function stopWalk() {
  if (S.walkTimer) clearInterval(S.walkTimer);
  S.walkTimer = null;
  if (S.audio) $("sound-preview").pause();
}

// ------------------------------------------------------------------ render job

async function startRender() {
  showError("");
  const size = $("r-size").value.trim();
  const body = {ckpt: S.ckpt, keyframes: S.keys.map((k) => k.z), size: /^\d+$/.test(size) ? +size : size,
                fps: +$("r-fps").value, invert: $("invert").checked, ...walkSettings(),
                ...($("palette").value ? {palette: $("palette").value} : {}), ...audioSettings()};
  const seconds = $("r-seconds").value.trim();
  if (seconds) body.seconds = +seconds; else body.frames = +$("r-frames").value;
  try {
    showJob(await api("/api/render", body));
  } catch (e) { showError(e.message); }
}

async function cancelRender() {
  try { showJob(await api("/api/job/cancel", {})); } catch (e) { showError(e.message); }
}

function playable() {
  return $("result").canPlayType('video/mp4; codecs="avc1.640028"') !== "";
}

async function showJob(job) {
  const prev = S.job;
  S.job = job;
  const running = job.state === "running";
  $("render").disabled = running;
  $("cancel").disabled = !running;
  $("r-progress").max = job.total || 1;
  $("r-progress").value = job.done || 0;
  $("r-status").textContent = job.state === "idle" ? "idle"
    : `${job.name}: ${job.state}${running ? ` ${job.done}/${job.total} frames` : ""}${job.error ? `: ${job.error}` : ""}`;
  $("r-status").dataset.state = job.state;
  if (job.state !== "done" || (prev && prev.id === job.id && prev.state === "done")) return;
  const files = job.files;
  let src = `/files/${encodeURIComponent(files.video)}`;
  const links = [[files.video, "MP4"], [files.sidecar, "sidecar"], [files.keyframes, "keyframes .npy"]];
  if (!playable()) {  // no H.264 in this browser: ask for a VP9 WebM of the same render
    try {
      const w = await api("/api/webm", {name: files.video});
      src = `/files/${encodeURIComponent(w.webm)}`;
      links.push([w.webm, "WebM"]);
    } catch (e) { showError(e.message); }
  }
  const video = $("result");
  video.src = src; video.hidden = false; video.play().catch(() => {});
  $("downloads").innerHTML = links.map(([name, label]) =>
    `<a href="/files/${encodeURIComponent(name)}?download=1" download="${name}">${label}</a>`).join("");
  $("command").value = job.command;
  $("preset").value = job.preset;
}

// ------------------------------------------------------------------ your own digit
// Pointer events cover mouse, touch and pen. Lifting the pen projects the drawing (POST /api/project, the
// live settings: one start, fewer steps); the answer's latent becomes the explorer's base and can join the
// keyframe strip. A picture chosen with the file control goes the same way as its raw bytes.

function drawingCanvas() {
  const c = $("draw"), g = c.getContext("2d");
  const clear = () => { g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height); S.drawn = null;
                        $("draw-add").disabled = true; $("draw-result").hidden = true; };
  clear();
  let last = null;
  const at = (ev) => { const r = c.getBoundingClientRect();
                       return [(ev.clientX - r.left) * c.width / r.width, (ev.clientY - r.top) * c.height / r.height]; };
  c.addEventListener("pointerdown", (ev) => {
    c.setPointerCapture(ev.pointerId); last = at(ev); ev.preventDefault();
    if (S.warmed !== S.ckpt) { S.warmed = S.ckpt; api("/api/project", {ckpt: S.ckpt, warm: true}).catch(() => {}); }
  });
  c.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = at(ev);
    g.strokeStyle = "#000"; g.lineWidth = c.width / 11; g.lineCap = "round"; g.lineJoin = "round";
    g.beginPath(); g.moveTo(last[0], last[1]); g.lineTo(p[0], p[1]); g.stroke();
    last = p;
  });
  const up = () => { if (!last) return; last = null; projectDrawing(); };
  c.addEventListener("pointerup", up);
  c.addEventListener("pointercancel", up);
  $("draw-clear").onclick = clear;
  $("draw-file").onchange = (ev) => { const f = ev.target.files[0]; if (f) projectPicture(f); };
  $("draw-add").onclick = () => {
    if (!S.drawn) return;
    const thumb = document.createElement("canvas");
    thumb.width = 64; thumb.height = 64;
    thumb.getContext("2d").drawImage($("draw-result"), 0, 0, 64, 64);
    S.keys.push({z: S.drawn.z.slice(), label: S.drawn.label, thumb});
    renderKeys();
  };
}

async function showProjection(res, what) {
  const read = `reads as ${res.read} (${Math.round(100 * res.confidence)}%)`;
  S.drawn = {z: res.z, label: `${what}: ${read}`};
  const img = $("draw-result");
  await new Promise((ok) => { img.onload = ok; img.src = res.png; });
  img.hidden = false;
  $("draw-add").disabled = false;
  $("draw-status").textContent = `${read}, ${res.seconds.toFixed(2)} s` + (res.warnings.length ? ` — ${res.warnings.join("; ")}` : "");
  setBase(res.z, S.drawn.label);
}

async function projectDrawing() {
  const n = (S.drawSeq = (S.drawSeq || 0) + 1);
  $("draw-status").textContent = "projecting…";
  try {
    const res = await api("/api/project", {ckpt: S.ckpt, png: $("draw").toDataURL("image/png"), size: 64});
    if (n === S.drawSeq) await showProjection(res, "drawn");  // a newer stroke's answer wins
  } catch (e) { $("draw-status").textContent = ""; showError(e.message); }
}

async function projectPicture(file) {
  $("draw-status").textContent = "projecting…";
  try {
    const q = `?ckpt=${encodeURIComponent(S.ckpt)}&size=64&name=${encodeURIComponent(file.name)}`;
    const res = await fetch("/api/project" + q, {method: "POST", body: file,
                                                 headers: {"Content-Type": file.type || "application/octet-stream"}});
    const data = await res.json().catch(() => ({error: `HTTP ${res.status}`}));
    if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
    await showProjection(data, file.name);
  } catch (e) { $("draw-status").textContent = ""; showError(e.message); }
}

// ------------------------------------------------------------------ start

async function main() {
  const state = await api("/api/state");
  const sel = $("ckpt");
  state.checkpoints.forEach((c) => {
    const o = document.createElement("option");
    o.value = c.id; o.textContent = c.label; sel.appendChild(o);
  });
  sel.value = state.default;
  sel.onchange = () => loadCheckpoint(sel.value).catch((e) => showError(e.message));
  S.palettes = state.palettes || {};
  Object.keys(S.palettes).forEach((name) => {
    const o = document.createElement("option");
    o.value = name; o.textContent = name; $("palette").appendChild(o);
  });
  $("palette").onchange = requestPreview;
  $("invert").onchange = () => { requestPreview(); loadSeeds().catch((e) => showError(e.message)); };
  $("preview-size").onchange = requestPreview;
  ["cam-zoom", "cam-pan", "cam-rotate"].forEach((id) => { $(id).onchange = requestPreview; });
  cameraControls($("preview"));
  $("add-key").onclick = addKey;
  drawingCanvas();
  $("play").onclick = startWalkPreview;
  $("stop").onclick = stopWalk;
  $("render").onclick = startRender;
  $("cancel").onclick = cancelRender;
  $("audio-file").onchange = (ev) => loadAudio(ev.target.files[0]);
  $("sync").onchange = drawWave;
  $("bpk").onchange = drawWave;
  $("seeds-prev").onclick = () => { S.seedStart = Math.max(0, S.seedStart - 16); loadSeeds(); };
  $("seeds-next").onclick = () => { S.seedStart += 16; loadSeeds(); };
  connect();
  await loadCheckpoint(state.default);
  showJob(state.job);
}

main().catch((e) => showError(e.message));
