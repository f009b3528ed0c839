/**
 * A dependency-light line plot for the predictor evaluation: one panel per
 * trace, actual next-5 s mean in black, model prediction in blue, model p10 in
 * light blue, last-value baseline in orange. pngjs only writes pixels, so the
 * lines are drawn here (Bresenham) and the legend lives in docs/predictor.md.
 */
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

export interface PanelSeries {
  readonly color: readonly [number, number, number];
  readonly values: readonly number[];
}

export interface Panel {
  readonly series: readonly PanelSeries[];
}

export const COLORS = {
  actual: [0, 0, 0],
  model: [31, 119, 180],
  low: [158, 202, 225],
  last: [255, 127, 14],
} as const;

const PANEL_W = 900;
const PANEL_H = 180;
const PAD = 12;

export function writePlot(file: string, panels: readonly Panel[]): void {
  const width = PANEL_W + 2 * PAD;
  const height = panels.length * (PANEL_H + PAD) + PAD;
  const png = new PNG({ width, height });
  png.data.fill(255);
  panels.forEach((panel, p) => {
    const top = PAD + p * (PANEL_H + PAD);
    frame(png, PAD, top, PANEL_W, PANEL_H);
    const all = panel.series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
    const max = Math.max(...all) * 1.05;
    const min = Math.min(0, ...all);
    for (const s of panel.series) {
      const n = s.values.length;
      const x = (i: number) => PAD + Math.round((i / Math.max(1, n - 1)) * (PANEL_W - 1));
      const y = (v: number) => top + PANEL_H - 1 - Math.round(((v - min) / (max - min || 1)) * (PANEL_H - 1));
      for (let i = 1; i < n; i++) line(png, x(i - 1), y(s.values[i - 1]!), x(i), y(s.values[i]!), s.color);
    }
  });
  writeFileSync(file, PNG.sync.write(png));
}

function frame(png: PNG, x0: number, y0: number, w: number, h: number): void {
  const grey = [200, 200, 200] as const;
  line(png, x0, y0, x0 + w - 1, y0, grey);
  line(png, x0, y0 + h - 1, x0 + w - 1, y0 + h - 1, grey);
  line(png, x0, y0, x0, y0 + h - 1, grey);
  line(png, x0 + w - 1, y0, x0 + w - 1, y0 + h - 1, grey);
}

function line(png: PNG, x0: number, y0: number, x1: number, y1: number, c: readonly number[]): void {
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx + dy;
  for (;;) {
    if (x0 >= 0 && y0 >= 0 && x0 < png.width && y0 < png.height) {
      const k = (png.width * y0 + x0) << 2;
      png.data[k] = c[0]!;
      png.data[k + 1] = c[1]!;
      png.data[k + 2] = c[2]!;
      png.data[k + 3] = 255;
    }
    if (x0 === x1 && y0 === y1) return;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}
