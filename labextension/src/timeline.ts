/**
 * The panel's memory-over-time plot, without the DOM: the `memory` answer parsed, and
 * the plot's geometry (scales, ticks, paths, the threshold lines, where each marker
 * goes, the legend). src/plot.ts draws it as SVG; test/timeline.spec.ts tests it.
 */

import {
  ITrans,
  NO_TRANSLATION,
  clamp01,
  formatBytes,
  formatPercent,
  isDict,
  num,
  numOrNull,
  oneOf
} from './logic';
import * as wire from './protocol';

export type IMemorySample = wire.IMemorySample;
export type IMemoryMarker = wire.IMemoryMarker;
export type MarkerKind = IMemoryMarker['kind'];
/** The `memory` answer: samples and markers oldest first, each with a finite time. */
export type IMemoryTimeline = wire.IMemoryTimeline;

const MARKER_KINDS: readonly string[] = ['cleanup', 'budget', 'guard'];

function parseSample(value: unknown): IMemorySample | null {
  if (!isDict(value)) {
    return null;
  }
  const t = numOrNull(value.t);
  if (t === null) {
    return null;
  }
  return {
    t,
    unreclaimableBytes: Math.max(0, num(value.unreclaimableBytes)),
    pagedBytes: Math.max(0, num(value.pagedBytes))
  };
}

function parseMarker(value: unknown): IMemoryMarker | null {
  if (!isDict(value) || !MARKER_KINDS.includes(value.kind as string)) {
    return null;
  }
  const t = numOrNull(value.t);
  if (t === null) {
    return null;
  }
  return {
    t,
    kind: oneOf<MarkerKind>(value.kind, MARKER_KINDS, 'cleanup'),
    executionCount: Math.max(0, num(value.executionCount))
  };
}

function byTime<T extends { t: number }>(items: T[]): T[] {
  return items
    .map((item, index) => ({ item, index }))
    .sort((a, b) => a.item.t - b.item.t || a.index - b.index)
    .map(entry => entry.item);
}

/** The `memory` result, or null when `value` is not one. */
export function parseMemoryTimeline(value: unknown): IMemoryTimeline | null {
  if (!isDict(value) || !Array.isArray(value.samples)) {
    return null;
  }
  const samples = value.samples
    .map(parseSample)
    .filter((s): s is IMemorySample => s !== null);
  const markers = Array.isArray(value.markers)
    ? value.markers
        .map(parseMarker)
        .filter((m): m is IMemoryMarker => m !== null)
    : [];
  return {
    limitBytes: Math.max(0, num(value.limitBytes)),
    guardThreshold: clamp01(num(value.guardThreshold)),
    memoryThreshold: clamp01(num(value.memoryThreshold)),
    samples: byTime(samples),
    markers: byTime(markers),
    guardStops: Math.max(0, Math.trunc(num(value.guardStops)))
  };
}

// -- scales and ticks ------------------------------------------------------------------------

/** A linear map from `domain` onto `range` (a constant domain maps to the range's start). */
export function scale(
  domain: [number, number],
  range: [number, number]
): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0;
  return (v: number) => (span === 0 ? r0 : r0 + ((v - d0) / span) * (r1 - r0));
}

/**
 * Byte ticks from 0 to at most `top`: a power-of-two step (512 MiB, 1 GiB, 2 GiB…), the
 * smallest that gives at most `count` steps, so that labels read "0, 512 MiB, 1 GiB,
 * 1.5 GiB".
 */
export function byteTicks(top: number, count = 4): number[] {
  if (!Number.isFinite(top) || top <= 0) {
    return [0];
  }
  let step = 1;
  while (step * count < top) {
    step *= 2;
  }
  const ticks: number[] = [];
  for (let v = 0; v <= top; v += step) {
    ticks.push(v);
  }
  return ticks;
}

/** A byte axis label: "0", "512 MiB", "1 GiB", "1.5 GiB" (no ".0"). */
export function formatAxisBytes(n: number): string {
  if (n === 0) {
    return '0';
  }
  return formatBytes(n).replace(/\.0 /, ' ');
}

/** Steps of a time axis, in seconds. */
const TIME_STEPS_S = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400
];

/** Time ticks (Unix seconds) at multiples of a round step, at most `count`+1 of them. */
export function timeTicks(t0: number, t1: number, count = 4): number[] {
  const span = t1 - t0;
  if (!Number.isFinite(span) || span <= 0) {
    return [];
  }
  const step =
    TIME_STEPS_S.find(s => span / s <= count) ??
    Math.ceil(span / count / 86400) * 86400;
  const ticks: number[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    ticks.push(t);
  }
  return ticks;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** "14:03", or "14:03:20" with seconds: the browser's local time of Unix seconds `t`. */
export function formatClock(t: number, seconds = true): string {
  const d = new Date(t * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return seconds ? `${hm}:${pad(d.getSeconds())}` : hm;
}

/** An SVG path through the points: "M1.0,2.0L3.0,4.0"; "" without points. */
export function linePath(points: Array<[number, number]>): string {
  return points
    .map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`)
    .join('');
}

/** The area under a line down to `baseline` (closed); "" without points. */
export function areaPath(
  points: Array<[number, number]>,
  baseline: number
): string {
  if (!points.length) {
    return '';
  }
  const first = points[0][0].toFixed(1);
  const last = points[points.length - 1][0].toFixed(1);
  const b = baseline.toFixed(1);
  return `${linePath(points)}L${last},${b}L${first},${b}Z`;
}

// -- the plot --------------------------------------------------------------------------------

/** Room around the plot area, in px: the byte labels left, the time labels below. */
export const PLOT_MARGIN = { left: 50, right: 8, top: 14, bottom: 18 };
/** A shorter history than this (seconds) is drawn over this span, ending at its last sample. */
export const MIN_SPAN_S = 10;
/** The top of the byte axis: this much above the limit or the highest sample. */
const HEADROOM = 1.05;

export type ThresholdKey = 'limit' | 'guard' | 'budget';

export type LegendKey =
  | 'unreclaimable'
  | 'paged'
  | 'limit'
  | 'guard-line'
  | 'budget-line'
  | 'marker-cleanup'
  | 'marker-budget'
  | 'marker-guard';

export interface IPlot {
  width: number;
  height: number;
  /** The plot area's edges, in px from the top left. */
  area: { left: number; right: number; top: number; bottom: number };
  yTicks: Array<{ y: number; label: string }>;
  xTicks: Array<{ x: number; label: string }>;
  /** How many samples the lines go through. */
  points: number;
  /** Paths (`d`) of non-reclaimable memory, the area under it, and paged-out memory (null: none was). */
  unreclaimable: string;
  unreclaimableArea: string;
  paged: string | null;
  /** The newest sample, drawn as a dot. */
  last: { x: number; y: number; title: string };
  /** The limit and the guard's and the budget's thresholds, those that are on. */
  lines: Array<{ key: ThresholdKey; y: number; bytes: number; title: string }>;
  /** Cleanups, budget cleanups and guard stops within the samples' time. */
  markers: Array<{ kind: MarkerKind; x: number; title: string }>;
  legend: Array<{ key: LegendKey; label: string }>;
  /** "The guard stopped 2 cells in this kernel", or "". */
  caption: string;
}

function markerTitle(marker: IMemoryMarker, trans: ITrans): string {
  const at = formatClock(marker.t);
  switch (marker.kind) {
    case 'guard':
      return trans.__(
        'Guard: stopped cell %1 before the limit, %2',
        marker.executionCount,
        at
      );
    case 'budget':
      return trans.__(
        'Budget cleanup (memory pressure) at cell %1, %2',
        marker.executionCount,
        at
      );
    default:
      return trans.__('Cleanup at cell %1, %2', marker.executionCount, at);
  }
}

function markerLabel(kind: MarkerKind, n: number, trans: ITrans): string {
  switch (kind) {
    case 'guard':
      return trans.__('Guard stop (%1)', n);
    case 'budget':
      return trans.__('Budget cleanup (%1)', n);
    default:
      return trans.__('Cleanup (%1)', n);
  }
}

/**
 * The plot of a timeline in a `width` × `height` px box; null without samples (there is
 * nothing to draw). Bytes go up from 0 to a little above the limit (or the highest
 * sample, if higher); time runs from the first sample to the last.
 */
export function memoryPlot(
  timeline: IMemoryTimeline,
  width: number,
  height: number,
  trans: ITrans = NO_TRANSLATION
): IPlot | null {
  const samples = timeline.samples;
  if (!samples.length) {
    return null;
  }
  const area = {
    left: PLOT_MARGIN.left,
    right: Math.max(PLOT_MARGIN.left + 1, width - PLOT_MARGIN.right),
    top: PLOT_MARGIN.top,
    bottom: Math.max(PLOT_MARGIN.top + 1, height - PLOT_MARGIN.bottom)
  };
  const t1 = samples[samples.length - 1].t;
  const t0 = Math.min(samples[0].t, t1 - MIN_SPAN_S);
  const highest = Math.max(
    timeline.limitBytes,
    ...samples.map(s => Math.max(s.unreclaimableBytes, s.pagedBytes))
  );
  const top = highest > 0 ? highest * HEADROOM : 1;
  const x = scale([t0, t1], [area.left, area.right]);
  const y = scale([0, top], [area.bottom, area.top]);

  const points = samples.map((s): [number, number] => [
    x(s.t),
    y(s.unreclaimableBytes)
  ]);
  const anyPaged = samples.some(s => s.pagedBytes > 0);
  const newest = samples[samples.length - 1];
  const legend: IPlot['legend'] = [
    { key: 'unreclaimable', label: trans.__('Not reclaimable') }
  ];
  if (anyPaged) {
    legend.push({ key: 'paged', label: trans.__('Paged out') });
  }

  const lines: IPlot['lines'] = [];
  const limit = timeline.limitBytes;
  if (limit > 0) {
    lines.push({
      key: 'limit',
      y: y(limit),
      bytes: limit,
      title: trans.__('Limit %1', formatBytes(limit))
    });
    legend.push({
      key: 'limit',
      label: trans.__('Limit %1', formatBytes(limit))
    });
    const guard = timeline.guardThreshold;
    if (guard > 0) {
      const bytes = guard * limit;
      lines.push({
        key: 'guard',
        y: y(bytes),
        bytes,
        title: trans.__(
          'Guard %1 (%2): a cell still running here is stopped',
          formatPercent(guard),
          formatBytes(bytes)
        )
      });
      legend.push({
        key: 'guard-line',
        label: trans.__('Guard %1', formatPercent(guard))
      });
    }
    const budget = timeline.memoryThreshold;
    if (budget > 0) {
      const bytes = budget * limit;
      lines.push({
        key: 'budget',
        y: y(bytes),
        bytes,
        title: trans.__(
          'Budget %1 (%2): above it, a cleanup pages values out',
          formatPercent(budget),
          formatBytes(bytes)
        )
      });
      legend.push({
        key: 'budget-line',
        label: trans.__('Budget %1', formatPercent(budget))
      });
    }
  }

  // Markers older than the first sample have no line to sit on: left out.
  const markers = timeline.markers
    .filter(m => m.t >= t0)
    .map(m => ({
      kind: m.kind,
      x: x(Math.min(m.t, t1)),
      title: markerTitle(m, trans)
    }));
  for (const kind of ['cleanup', 'budget', 'guard'] as const) {
    const n = markers.filter(m => m.kind === kind).length;
    if (n) {
      legend.push({
        key: `marker-${kind}`,
        label: markerLabel(kind, n, trans)
      });
    }
  }

  const times = timeTicks(t0, t1);
  const step = times.length > 1 ? times[1] - times[0] : t1 - t0;
  return {
    width,
    height,
    area,
    yTicks: byteTicks(top).map(v => ({ y: y(v), label: formatAxisBytes(v) })),
    xTicks: times.map(t => ({ x: x(t), label: formatClock(t, step < 60) })),
    points: points.length,
    unreclaimable: linePath(points),
    unreclaimableArea: areaPath(points, area.bottom),
    paged: anyPaged
      ? linePath(samples.map(s => [x(s.t), y(s.pagedBytes)]))
      : null,
    last: {
      x: x(newest.t),
      y: y(newest.unreclaimableBytes),
      title: trans.__(
        '%1: %2 not reclaimable, %3 paged out',
        formatClock(newest.t),
        formatBytes(newest.unreclaimableBytes),
        formatBytes(newest.pagedBytes)
      )
    },
    lines,
    markers,
    legend,
    caption:
      timeline.guardStops > 0
        ? trans.__(
            'The guard stopped %1 cell(s) in this kernel before it ran out of memory.',
            timeline.guardStops
          )
        : ''
  };
}

/** The previous kernel's details, for the notice's tooltip. */
export function previousKernelTitle(
  previous: wire.IPreviousKernel,
  trans: ITrans = NO_TRANSLATION
): string {
  const lines = [
    trans.__(
      'pid %1, started %2, last seen %3',
      previous.pid,
      new Date(previous.startedAt * 1000).toLocaleString(),
      new Date(previous.lastSeenAt * 1000).toLocaleString()
    )
  ];
  if (previous.limitBytes > 0) {
    lines.push(
      trans.__(
        'memory at its last sample: %1 of its %2 limit',
        formatBytes(previous.unreclaimableBytes),
        formatBytes(previous.limitBytes)
      )
    );
  }
  if (previous.signal !== null) {
    lines.push(trans.__('signal %1', previous.signal));
  }
  if (previous.inOneCall) {
    lines.push(
      trans.__(
        'it was inside a single call (one allocation) that greed cannot interrupt'
      )
    );
  }
  return lines.join('\n');
}
