// `wasmdrv fuzz --plot`: coverage over time as SVG.

import type { FuzzResult } from './fuzz.ts';

/** Coverage over time as SVG: map entries covered against seconds, as the bench's irq-cdf.svg is drawn. */
export function coveragePlot(r: FuzzResult, title: string): string {
  const W = 640,
    H = 320,
    L = 60,
    B = 40;
  const maxX = Math.max(1, r.ms / 1000),
    maxY = Math.max(1, r.coverage);
  const x = (s: number) => L + (s / maxX) * (W - L - 20);
  const y = (c: number) => H - B - (c / maxY) * (H - B - 30);
  // A step line: coverage only grows when an input joins the corpus.
  const pts: string[] = [`${x(0)},${y(0)}`];
  let last = 0;
  for (const t of r.timeline) {
    pts.push(
      `${x(t.ms / 1000).toFixed(1)},${y(last).toFixed(1)}`,
      `${x(t.ms / 1000).toFixed(1)},${y(t.coverage).toFixed(1)}`,
    );
    last = t.coverage;
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxX);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="16" text-anchor="middle">${xmlText(title)}: ${r.coverage} edges after ${r.execs} executions</text>
<line x1="${L}" y1="${H - B}" x2="${W - 20}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="30" x2="${L}" y2="${H - B}" stroke="black"/>
${ticks.map((t) => `<text x="${x(t).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${t.toFixed(t < 10 ? 1 : 0)} s</text>`).join('\n')}
<text x="${L - 6}" y="34" text-anchor="end">${r.coverage}</text><text x="${L - 6}" y="${H - B}" text-anchor="end">0</text>
<polyline fill="none" stroke="#2c7a3f" stroke-width="2" points="${pts.join(' ')}"/>
</svg>
`;
}

const xmlText = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
