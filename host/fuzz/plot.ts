// `wasmdrv fuzz --plot`: coverage over time as SVG.

import type { FuzzResult } from './fuzz.ts';

/** Coverage over time as SVG: map entries covered against executions. */
export function coveragePlot(r: FuzzResult, title: string): string {
  const W = 640,
    H = 320,
    L = 60,
    B = 40;
  const maxX = Math.max(1, r.execs),
    maxY = Math.max(1, r.coverage);
  const pts = [{ execs: 0, coverage: 0 }, ...r.timeline].map(
    (t) =>
      `${(L + (t.execs / maxX) * (W - L - 20)).toFixed(1)},${(H - B - (t.coverage / maxY) * (H - B - 30)).toFixed(1)}`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="16" text-anchor="middle">${title}: ${r.coverage} edges after ${r.execs} executions</text>
<line x1="${L}" y1="${H - B}" x2="${W - 20}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="30" x2="${L}" y2="${H - B}" stroke="black"/>
<text x="${W - 20}" y="${H - B + 16}" text-anchor="end">${r.execs} execs</text><text x="${L - 6}" y="34" text-anchor="end">${r.coverage}</text>
<text x="${L - 6}" y="${H - B}" text-anchor="end">0</text>
<polyline fill="none" stroke="#2c7a3f" stroke-width="2" points="${pts.join(' ')}"/>
</svg>
`;
}
