window.addEventListener("load", () => { document.getElementById("video").src = "/stream.mjpg"; });
let classes = [], last = null, shown = -1;
function take(label, other = false) {
  last = other ? null : label;
  post("/take", {label, other, count: Number(document.getElementById("count").value),
                 interval: Number(document.getElementById("interval").value)});
}
document.getElementById("other").addEventListener("click", () => take(null, true));
document.getElementById("add").addEventListener("click", async () => {
  const field = document.getElementById("new-class");
  if (await post("/class", {label: field.value})) { field.value = ""; refresh(); }
});
onKeys(() => classes, take, {
  " ": (event) => { if (last !== null) { event.preventDefault(); take(last); } },
  o: () => take(null, true),
});
function show(state) {
  classes = Object.keys(state.classes);
  const buttons = classButtons(classes, take, (name) => ` (${state.classes[name]})`);
  document.getElementById("classes").replaceChildren(...buttons);
  const busy = state.busy ? `taking ${state.busy}… · ` : "";
  const error = state.error ? ` · ${state.error}` : "";
  if (!document.getElementById("status").className)
    document.getElementById("status").textContent =
      `${busy}${state.written} written · ${state.skipped} skipped as near-duplicates${error}`;
  if (state.written !== shown) {
    shown = state.written;
    document.getElementById("recent").replaceChildren(...state.recent.map((photo, i) => {
      const image = document.createElement("img");
      image.src = `/thumb/${i}?v=${state.written}`;
      image.alt = image.title = `${photo.label}/${photo.file}`;
      return image;
    }));
  }
}
async function refresh() {
  try { show(await (await fetch("/state", {cache: "no-store"})).json()); }
  catch (e) { document.getElementById("status").textContent = "connection lost, retrying…"; }
}
setInterval(refresh, 500);
refresh();
