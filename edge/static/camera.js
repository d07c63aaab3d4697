// The stream is attached after load: an endless MJPEG response would otherwise hold the load event.
window.addEventListener("load", () => { document.getElementById("video").src = "/stream.mjpg"; });
function row(label, score) {
  const tr = document.createElement("tr");
  tr.append(text("td", label), text("td", `${(100 * score).toFixed(1)}%`));
  return tr;
}
async function refresh() {
  try {
    const state = await (await fetch("/stats", {cache: "no-store"})).json();
    if (state.result) {
      const r = state.result;
      const ood = r.ood_score === null || r.ood_score === undefined ? "" : ` · OOD score ${r.ood_score.toFixed(2)}`;
      const guess = r.decision === r.labels[0] ? "" : ` (${r.labels[0]} ${(100 * r.scores[0]).toFixed(1)}%)`;
      const shown = r.decision === r.labels[0] ? `${r.labels[0]} ${(100 * r.scores[0]).toFixed(1)}%` : r.decision;
      document.getElementById("top1").textContent = `${shown}${guess}${ood}`;
      document.getElementById("predictions").replaceChildren(...r.labels.map((label, i) => row(label, r.scores[i])));
      const l = r.latency_ms;
      document.getElementById("stats").textContent =
        `${state.fps.toFixed(1)} FPS · inference ${l.inference} ms · preprocess ${l.preprocess} ms · ` +
        `frame age ${r.age_ms} ms · frame ${r.frame} · dropped ${state.frames_dropped} · ` +
        `reconnects ${state.reconnects} · ${state.threads ?? "default"} threads · ${state.backend} · ` +
        `model ${r.model.slice(0, 8)}${r.model_version ? ` (${r.model_version})` : ""}`;
    }
  } catch (e) { document.getElementById("stats").textContent = "connection lost, retrying…"; }
  setTimeout(refresh, 500);
}
refresh();
