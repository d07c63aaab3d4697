// What the camera, collect and label pages share. Labels and file names are data: they enter the page as
// text nodes (textContent) only, never as markup, and the Content-Security-Policy runs no other script.

function text(tag, value) {
  const node = document.createElement(tag);
  node.textContent = value;
  return node;
}

// A JSON POST (no other site can send one here without a CORS preflight, which these servers never grant);
// its answer's message goes to #status, in red when the request was refused.
async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  const answer = await response.json();
  const status = document.getElementById("status");
  status.className = response.ok ? "" : "error";
  status.textContent = answer.message;
  return response.ok;
}

// One button per class, numbered 1–9 for the keys; `caption(name)` adds what a page shows beside the name.
function classButtons(names, pick, caption = () => "") {
  return names.map((name, i) => {
    const button = text("button", `${i < 9 ? (i + 1) + " · " : ""}${name}${caption(name)}`);
    button.dataset.label = name;
    button.addEventListener("click", () => pick(name));
    return button;
  });
}

// Keys 1–9 pick that class of `names()`; other keys run `keys[key]`. Typing in a field is never a shortcut.
function onKeys(names, pick, keys) {
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT") return;
    const chosen = names()[Number(event.key) - 1];
    if (event.key >= "1" && event.key <= "9" && chosen) pick(chosen);
    else if (keys[event.key]) keys[event.key](event);
  });
}
