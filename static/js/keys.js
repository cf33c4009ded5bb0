// The response keys of one participant.
//
// The session's key mapping (e.g. {"real": "f", "generated": "j"}) is swapped
// for half the participants to balance handedness; the response buttons are
// laid out in the same left-to-right order as their keys on the keyboard.

export const RESPONSES = ["real", "generated"];

export const LABELS = { real: "Real", generated: "Generated" };

// QWERTY rows and how far each is shifted to the right, in key widths, so
// that keys can be ordered left to right across rows.
const KEYBOARD_ROWS = [
  ["1234567890", 0],
  ["qwertyuiop", 0.5],
  ["asdfghjkl", 0.75],
  ["zxcvbnm", 1.25],
];

/** Horizontal position of a key on a QWERTY keyboard (unknown keys last). */
export function keyColumn(key) {
  for (const [row, shift] of KEYBOARD_ROWS) {
    const index = row.indexOf(key);
    if (index >= 0) return index + shift;
  }
  return Infinity;
}

export class KeyMapping {
  constructor(mapping) {
    for (const response of RESPONSES) {
      const key = mapping && mapping[response];
      if (typeof key !== "string" || key.length !== 1) {
        throw new Error(`key mapping needs one key for "${response}", got ${JSON.stringify(key)}`);
      }
    }
    if (mapping.real.toLowerCase() === mapping.generated.toLowerCase()) {
      throw new Error(`key mapping uses "${mapping.real}" for both responses`);
    }
    this.keys = { real: mapping.real.toLowerCase(), generated: mapping.generated.toLowerCase() };
  }

  /** The response a keydown event stands for, or null. */
  responseFor(event) {
    if (event.repeat || event.ctrlKey || event.altKey || event.metaKey) return null;
    const key = typeof event.key === "string" ? event.key.toLowerCase() : "";
    return RESPONSES.find((response) => this.keys[response] === key) || null;
  }

  keyFor(response) {
    return this.keys[response];
  }

  /** Responses ordered as their keys sit on the keyboard, left first. */
  ordered() {
    const column = (response) => keyColumn(this.keys[response]);
    return [...RESPONSES].sort((a, b) => column(a) - column(b));
  }
}
