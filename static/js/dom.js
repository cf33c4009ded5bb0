// Small DOM helpers. Text from the server always goes in as text, never HTML.

/**
 * Create an element. `props`: `class`, `text`, `attrs` (attributes), `on`
 * (event listeners) and any DOM property (e.g. `type`, `disabled`).
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "attrs") {
      for (const [attr, attrValue] of Object.entries(value)) node.setAttribute(attr, attrValue);
    } else if (name === "on") {
      for (const [type, listener] of Object.entries(value)) node.addEventListener(type, listener);
    } else node[name] = value;
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

/** Paragraphs from plain text: a blank line separates paragraphs. */
export function paragraphs(text) {
  return String(text || "")
    .split(/\n\s*\n/)
    .map((chunk) => chunk.trim())
    .filter(Boolean)
    .map((chunk) => el("p", { text: chunk }));
}

/**
 * Replace the container's content and move focus into it: to the element
 * marked `data-autofocus`, else to the heading, so keyboard and screen-reader
 * users start at the new screen.
 */
export function mount(container, ...nodes) {
  container.replaceChildren(...nodes);
  const target =
    container.querySelector("[data-autofocus]") || container.querySelector("h1, h2");
  if (target) {
    if (!target.hasAttribute("tabindex") && /^H\d$/.test(target.tagName)) {
      target.setAttribute("tabindex", "-1");
    }
    target.focus({ preventScroll: true });
  }
}

/** Resolves with the event when `target` next fires `type`. */
export function once(target, type) {
  return new Promise((resolve) => target.addEventListener(type, resolve, { once: true }));
}

/** A page-style screen: heading, body nodes and an actions row. */
export function page(title, body = [], actions = []) {
  return el("section", { class: "page" }, [
    el("h1", { text: title }),
    ...body,
    actions.length ? el("div", { class: "actions" }, actions) : null,
  ]);
}

export function button(text, props = {}) {
  return el("button", { type: "button", text, ...props });
}
