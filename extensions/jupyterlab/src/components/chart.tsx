/** A small SVG line chart: metric curves over steps, one colour a series, themed axes. */
import * as React from 'react';

import { formatValue } from '../format';

// Tableau 10: distinguishable on light and dark themes alike.
export const COLOURS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac'
];

export interface ISeries {
  label: string;
  points: [number, number | null][];
  /** Draw dots only (trials), not a line. */
  dots?: boolean;
  dashed?: boolean;
  colour?: string;
}

const W = 420;
const H = 200;
const PAD = { left: 52, right: 12, top: 10, bottom: 28 };

export function LineChart(props: {
  title: string;
  series: ISeries[];
  xLabel?: string;
}): JSX.Element {
  const finite = props.series.flatMap(s =>
    s.points.filter((p): p is [number, number] => p[1] !== null && isFinite(p[1]))
  );
  if (!finite.length) {
    return (
      <figure className="nbt-chart" aria-label={props.title}>
        <figcaption>{props.title}</figcaption>
        <div className="nbt-empty">no finite values to draw</div>
      </figure>
    );
  }
  const xs = finite.map(p => p[0]);
  const ys = finite.map(p => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) {
    [x0, x1] = [x0 - 1, x1 + 1];
  }
  if (y0 === y1) {
    const pad = Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const sx = (x: number) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y: number) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const yTicks = [y0, (y0 + y1) / 2, y1];
  const xTicks = [x0, Math.round((x0 + x1) / 2), x1];
  return (
    <figure className="nbt-chart" aria-label={props.title}>
      <figcaption>{props.title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${props.title} chart`}>
        <line className="nbt-axis" x1={PAD.left} y1={H - PAD.bottom} x2={W - PAD.right} y2={H - PAD.bottom} />
        <line className="nbt-axis" x1={PAD.left} y1={PAD.top} x2={PAD.left} y2={H - PAD.bottom} />
        {yTicks.map((t, i) => (
          <g key={`y${i}`}>
            <line className="nbt-grid" x1={PAD.left} x2={W - PAD.right} y1={sy(t)} y2={sy(t)} />
            <text className="nbt-tick" x={PAD.left - 4} y={sy(t) + 4} textAnchor="end">
              {formatValue(Number(t.toPrecision(3)))}
            </text>
          </g>
        ))}
        {xTicks.map((t, i) => (
          <text key={`x${i}`} className="nbt-tick" x={sx(t)} y={H - PAD.bottom + 14} textAnchor="middle">
            {formatValue(t)}
          </text>
        ))}
        {props.xLabel && (
          <text className="nbt-tick" x={W - PAD.right} y={H - 2} textAnchor="end">
            {props.xLabel}
          </text>
        )}
        {props.series.map((s, i) => {
          const colour = s.colour ?? COLOURS[i % COLOURS.length];
          const pts = s.points.filter((p): p is [number, number] => p[1] !== null && isFinite(p[1]));
          if (s.dots || pts.length === 1) {
            return pts.map((p, j) => (
              <circle key={`${i}-${j}`} cx={sx(p[0])} cy={sy(p[1])} r={3.5} fill={colour}>
                <title>{`${s.label}: ${formatValue(p[1])} at ${formatValue(p[0])}`}</title>
              </circle>
            ));
          }
          const d = pts.map((p, j) => `${j ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
          return (
            <path key={i} d={d} fill="none" stroke={colour} strokeWidth={2}
              strokeDasharray={s.dashed ? '5 4' : undefined}>
              <title>{s.label}</title>
            </path>
          );
        })}
      </svg>
      {props.series.length > 1 && (
        <ul className="nbt-legend">
          {props.series.map((s, i) => (
            <li key={i}>
              <span className="nbt-swatch" style={{ background: s.colour ?? COLOURS[i % COLOURS.length] }} />
              {s.label}
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}
