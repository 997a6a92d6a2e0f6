// The small colour key under a view: its colour ramp between the values the ends stand for, and
// what the colours show (the weight grid's blocks, the feature maps).

export interface ColourKey {
  el: HTMLElement;
  lo: HTMLElement;
  hi: HTMLElement;
  what: HTMLElement;
}

/** A CSS gradient, left to right, through ``stops`` ([r, g, b] in 0..255). */
export function rampCss(stops: [number, number, number][]): string {
  return `linear-gradient(to right, ${stops.map((c) => `rgb(${c.map(Math.round).join(",")})`).join(", ")})`;
}

/** A key of ``ramp`` (a CSS background) whose ends and words the view sets as frames come. */
export function colourKey(ramp: string, what = ""): ColourKey {
  const el = document.createElement("span");
  el.className = "colour-key";
  const lo = document.createElement("span"), hi = document.createElement("span"), words = document.createElement("span");
  const bar = document.createElement("span");
  bar.className = "ramp";
  bar.style.background = ramp;
  words.className = "what";
  words.textContent = what;
  el.append(lo, bar, hi, words);
  return { el, lo, hi, what: words };
}
