// The memory plot's pure part (src/timeline.ts): the `memory` answer parsed, scales,
// ticks, paths, threshold lines, marker placement and the legend.
import { IPreviousKernel } from '../src/logic';
import {
  IMemoryTimeline,
  MIN_SPAN_S,
  PLOT_MARGIN,
  areaPath,
  byteTicks,
  formatAxisBytes,
  formatClock,
  linePath,
  memoryPlot,
  parseMemoryTimeline,
  previousKernelTitle,
  scale,
  timeTicks
} from '../src/timeline';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const T = 1_699_999_200; // a whole hour

function timeline(extra: Partial<IMemoryTimeline> = {}): IMemoryTimeline {
  return {
    limitBytes: 1.5 * GiB,
    guardThreshold: 0.95,
    memoryThreshold: 0.8,
    samples: [
      { t: T, unreclaimableBytes: 200 * MiB, pagedBytes: 0 },
      { t: T + 30, unreclaimableBytes: 900 * MiB, pagedBytes: 0 },
      { t: T + 60, unreclaimableBytes: 600 * MiB, pagedBytes: 300 * MiB }
    ],
    markers: [],
    guardStops: 0,
    ...extra
  };
}

describe('parseMemoryTimeline', () => {
  it('reads a well-formed answer', () => {
    const value = timeline({
      markers: [{ t: T + 30, kind: 'budget', executionCount: 4 }],
      guardStops: 1
    });
    expect(parseMemoryTimeline(value)).toEqual(value);
  });

  it('drops malformed samples and markers, and sorts them by time', () => {
    const parsed = parseMemoryTimeline({
      limitBytes: GiB,
      guardThreshold: 3,
      memoryThreshold: 'x',
      samples: [
        { t: T + 5, unreclaimableBytes: 2, pagedBytes: -1 },
        { t: 'soon', unreclaimableBytes: 1 },
        null,
        { t: T, unreclaimableBytes: 1 }
      ],
      markers: [
        { t: T, kind: 'explosion', executionCount: 1 },
        { t: T + 1, kind: 'guard', executionCount: 2 },
        { kind: 'cleanup' }
      ]
    });
    expect(parsed).toEqual({
      limitBytes: GiB,
      guardThreshold: 1,
      memoryThreshold: 0,
      samples: [
        { t: T, unreclaimableBytes: 1, pagedBytes: 0 },
        { t: T + 5, unreclaimableBytes: 2, pagedBytes: 0 }
      ],
      markers: [{ t: T + 1, kind: 'guard', executionCount: 2 }],
      guardStops: 0
    });
  });

  it('is null for what is not one', () => {
    for (const value of [null, 42, [], {}, { samples: 'many' }]) {
      expect(parseMemoryTimeline(value)).toBeNull();
    }
  });
});

describe('scales and ticks', () => {
  it('maps a domain onto a range, inverted too', () => {
    const y = scale([0, 100], [200, 0]);
    expect(y(0)).toBe(200);
    expect(y(50)).toBe(100);
    expect(y(100)).toBe(0);
    expect(scale([5, 5], [10, 20])(5)).toBe(10);
  });

  it('puts byte ticks at power-of-two steps', () => {
    expect(byteTicks(1.6 * GiB)).toEqual([0, 512 * MiB, GiB, 1.5 * GiB]);
    expect(byteTicks(3 * GiB)).toEqual([0, GiB, 2 * GiB, 3 * GiB]);
    expect(byteTicks(80 * GiB, 5)).toEqual(
      [0, 16, 32, 48, 64, 80].map(g => g * GiB)
    );
    expect(byteTicks(0)).toEqual([0]);
    expect(byteTicks(NaN)).toEqual([0]);
  });

  it('labels byte ticks without ".0"', () => {
    expect(byteTicks(1.6 * GiB).map(formatAxisBytes)).toEqual([
      '0',
      '512 MiB',
      '1 GiB',
      '1.5 GiB'
    ]);
  });

  it('puts time ticks at round steps within the span', () => {
    expect(timeTicks(T + 1, T + 61)).toEqual([T + 15, T + 30, T + 45, T + 60]);
    const ticks = timeTicks(T, T + 3600);
    expect(ticks.length).toBeLessThanOrEqual(5);
    expect(ticks.every(t => t % 900 === 0)).toBe(true);
    expect(timeTicks(T, T)).toEqual([]);
  });

  it('formats local clock times', () => {
    const d = new Date(T * 1000);
    const hm = [d.getHours(), d.getMinutes()]
      .map(n => String(n).padStart(2, '0'))
      .join(':');
    expect(formatClock(T, false)).toBe(hm);
    expect(formatClock(T)).toBe(
      `${hm}:${String(d.getSeconds()).padStart(2, '0')}`
    );
  });

  it('builds line and area paths', () => {
    expect(linePath([])).toBe('');
    expect(
      linePath([
        [1, 2],
        [3.25, 4]
      ])
    ).toBe('M1.0,2.0L3.3,4.0');
    expect(areaPath([[1, 2]], 10)).toBe('M1.0,2.0L1.0,10.0L1.0,10.0Z');
    expect(areaPath([], 10)).toBe('');
  });
});

describe('memoryPlot', () => {
  const W = 400;
  const H = 160;

  it('is null without samples', () => {
    expect(memoryPlot(timeline({ samples: [] }), W, H)).toBeNull();
  });

  it('spans the samples in time and the limit in bytes', () => {
    const plot = memoryPlot(timeline(), W, H)!;
    const { area } = plot;
    expect(area).toEqual({
      left: PLOT_MARGIN.left,
      right: W - PLOT_MARGIN.right,
      top: PLOT_MARGIN.top,
      bottom: H - PLOT_MARGIN.bottom
    });
    expect(plot.points).toBe(3);
    // first sample at the left edge, last at the right
    expect(plot.unreclaimable.startsWith(`M${area.left.toFixed(1)},`)).toBe(
      true
    );
    expect(plot.unreclaimable.split('L')).toHaveLength(3);
    expect(plot.last.x).toBeCloseTo(area.right);
    expect(plot.unreclaimableArea.endsWith('Z')).toBe(true);
    // the limit a little below the top; every line inside the plot area
    const limit = plot.lines.find(l => l.key === 'limit')!;
    expect(limit.bytes).toBe(1.5 * GiB);
    expect(limit.y).toBeGreaterThan(area.top);
    expect(limit.y - area.top).toBeLessThan(0.1 * (area.bottom - area.top));
    const guard = plot.lines.find(l => l.key === 'guard')!;
    const budget = plot.lines.find(l => l.key === 'budget')!;
    expect(guard.bytes).toBeCloseTo(0.95 * 1.5 * GiB);
    expect(budget.bytes).toBeCloseTo(0.8 * 1.5 * GiB);
    expect(limit.y).toBeLessThan(guard.y);
    expect(guard.y).toBeLessThan(budget.y);
    expect(budget.y).toBeLessThan(area.bottom);
    expect(guard.title).toContain('95%');
    // byte ticks from the bottom up, time ticks within the area
    expect(plot.yTicks[0]).toEqual({ y: area.bottom, label: '0' });
    expect(plot.yTicks.map(t => t.label)).toContain('1 GiB');
    for (const tick of plot.xTicks) {
      expect(tick.x).toBeGreaterThanOrEqual(area.left);
      expect(tick.x).toBeLessThanOrEqual(area.right);
      expect(tick.label).toMatch(/^\d\d:\d\d:\d\d$/); // a minute: with seconds
    }
  });

  it('draws paged-out memory only when some was', () => {
    expect(memoryPlot(timeline(), W, H)!.paged).toMatch(/^M.*L.*L/);
    const none = timeline({
      samples: [{ t: T, unreclaimableBytes: MiB, pagedBytes: 0 }]
    });
    const plot = memoryPlot(none, W, H)!;
    expect(plot.paged).toBeNull();
    expect(plot.legend.map(e => e.key)).not.toContain('paged');
  });

  it('leaves out the thresholds that are off, and all of them without a limit', () => {
    const off = memoryPlot(
      timeline({ guardThreshold: 0, memoryThreshold: 0 }),
      W,
      H
    )!;
    expect(off.lines.map(l => l.key)).toEqual(['limit']);
    const unlimited = memoryPlot(timeline({ limitBytes: 0 }), W, H)!;
    expect(unlimited.lines).toEqual([]);
    // the highest sample then sets the top
    expect(unlimited.yTicks.length).toBeGreaterThan(1);
  });

  it('shows a single sample over the shortest span, at the right edge', () => {
    const one = timeline({
      samples: [{ t: T, unreclaimableBytes: GiB, pagedBytes: 0 }]
    });
    const plot = memoryPlot(one, W, H)!;
    expect(plot.points).toBe(1);
    expect(plot.unreclaimable).not.toContain('L');
    expect(plot.last.x).toBeCloseTo(plot.area.right);
    expect(plot.xTicks.length).toBeGreaterThan(0);
    expect(MIN_SPAN_S).toBeGreaterThan(0);
  });

  it('places markers at their time, distinct by kind, in the legend with counts', () => {
    const plot = memoryPlot(
      timeline({
        markers: [
          { t: T - 100, kind: 'cleanup', executionCount: 1 }, // before the samples
          { t: T + 30, kind: 'cleanup', executionCount: 3 },
          { t: T + 30, kind: 'budget', executionCount: 3 },
          { t: T + 45, kind: 'guard', executionCount: 4 },
          { t: T + 90, kind: 'cleanup', executionCount: 5 } // after: at the last sample
        ],
        guardStops: 1
      }),
      W,
      H
    )!;
    const { left, right } = plot.area;
    expect(plot.markers.map(m => m.kind)).toEqual([
      'cleanup',
      'budget',
      'guard',
      'cleanup'
    ]);
    expect(plot.markers[0].x).toBeCloseTo((left + right) / 2);
    expect(plot.markers[2].x).toBeCloseTo(left + 0.75 * (right - left));
    expect(plot.markers[3].x).toBeCloseTo(right);
    expect(plot.markers[2].title).toMatch(/^Guard: stopped cell 4 /);
    expect(plot.markers[1].title).toMatch(/^Budget cleanup .* at cell 3, /);
    expect(plot.markers[0].title).toMatch(/^Cleanup at cell 3, /);
    expect(plot.legend).toEqual([
      { key: 'unreclaimable', label: 'Not reclaimable' },
      { key: 'paged', label: 'Paged out' },
      { key: 'limit', label: 'Limit 1.5 GiB' },
      { key: 'guard-line', label: 'Guard 95%' },
      { key: 'budget-line', label: 'Budget 80%' },
      { key: 'marker-cleanup', label: 'Cleanup (2)' },
      { key: 'marker-budget', label: 'Budget cleanup (1)' },
      { key: 'marker-guard', label: 'Guard stop (1)' }
    ]);
    expect(plot.caption).toContain('stopped 1 cell');
  });

  it('has no caption while the guard stopped nothing', () => {
    expect(memoryPlot(timeline(), W, H)!.caption).toBe('');
  });
});

describe('previousKernelTitle', () => {
  const previous: IPreviousKernel = {
    message:
      'Greed: the previous kernel of this notebook was killed at cell 57, out of memory (1.49 of its 1.50 GiB).',
    cause: 'oom',
    signal: null,
    executionCount: 57,
    unreclaimableBytes: 1.49 * GiB,
    limitBytes: 1.5 * GiB,
    inOneCall: false,
    pid: 4242,
    startedAt: T,
    lastSeenAt: T + 600
  };

  it('says which process it was and its memory', () => {
    const title = previousKernelTitle(previous);
    expect(title).toMatch(/^pid 4242, started /);
    expect(title).toContain('1.5 GiB of its 1.5 GiB limit');
    expect(title).not.toContain('signal');
  });

  it('adds the signal and a single call when known', () => {
    const title = previousKernelTitle({
      ...previous,
      cause: 'signal',
      signal: 11,
      inOneCall: true
    });
    expect(title).toContain('signal 11');
    expect(title).toContain('single call');
  });
});
