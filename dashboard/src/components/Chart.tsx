// Interactive charts with uPlot: hover for values (the legend follows the cursor), drag to zoom on the x axis,
// double-click to zoom out. The chart is one canvas, described for screen readers by `label`.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Line {
  label: string;
  values: (number | null)[];
  color: string;
  dash?: number[];
  width?: number;
  bars?: boolean;
  points?: boolean;
}

export const PALETTE = ["#1f5fbf", "#d4561c", "#2a9d4b", "#8e44ad", "#b8860b", "#17a2b8", "#c0392b", "#555"];
export const NASH_COLOR = "#2a7f3f";
export const MONOPOLY_COLOR = "#b02a2a";

export function Chart({
  x,
  lines,
  label,
  xLabel,
  yLabel,
  height = 300,
  testId,
}: {
  x: number[];
  lines: Line[];
  label: string;
  xLabel: string;
  yLabel: string;
  height?: number;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const width = Math.max(320, element.clientWidth || 640);
    const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.9, 60] }) : undefined;
    const options: uPlot.Options = {
      width,
      height,
      scales: {
        x: {
          time: false,
          // bars: half a bar's width of room at both ends, so the first and last are drawn whole
          ...(lines.some((l) => l.bars) && x.length > 1
            ? { range: (): uPlot.Range.MinMax => [x[0] - (x[1] - x[0]) / 2, x[x.length - 1] + (x[1] - x[0]) / 2] }
            : {}),
        },
      },
      axes: [
        { label: xLabel, stroke: "#333", space: 70, values: (_: uPlot, ticks: number[]) => ticks.map(compact) },
        { label: yLabel, stroke: "#333", size: 60 },
      ],
      series: [
        { label: xLabel },
        ...lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          width: line.width ?? 2,
          dash: line.dash,
          spanGaps: true,
          points: { show: line.points ?? false },
          ...(line.bars ? { paths: bars, fill: line.color + "99" } : {}),
        })),
      ],
      cursor: { drag: { x: true, y: false } },
    };
    const data = [x, ...lines.map((line) => line.values)] as uPlot.AlignedData;
    const plot = new uPlot(options, data, element);
    const resize = new ResizeObserver(() => {
      const next = Math.max(320, element.clientWidth);
      if (Math.abs(next - plot.width) > 4) plot.setSize({ width: next, height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [x, lines, height, xLabel, yLabel]);
  return <div class="chart" ref={box} role="img" aria-label={label} data-testid={testId} />;
}

/** 1200000 -> "1.2M", 25000 -> "25k": tick labels that stay apart on a period axis. */
export function compact(value: number): string {
  const size = Math.abs(value);
  if (size >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (size >= 1e4) return `${+(value / 1e3).toPrecision(3)}k`;
  return `${+value.toPrecision(4)}`;
}

/** Counts of `values` in `bins` equal bins: x = the bins' centres. */
export function histogram(values: number[], bins: number): { x: number[]; counts: number[] } {
  const finite = values.filter((v) => Number.isFinite(v));
  if (!finite.length) return { x: [], counts: [] };
  let low = Math.min(...finite);
  let high = Math.max(...finite);
  if (high - low < 1e-9) {
    low -= 0.05;
    high += 0.05;
  }
  const width = (high - low) / bins;
  const counts = new Array(bins).fill(0);
  for (const v of finite) counts[Math.min(bins - 1, Math.floor((v - low) / width))] += 1;
  return { x: counts.map((_, i) => low + (i + 0.5) * width), counts };
}
