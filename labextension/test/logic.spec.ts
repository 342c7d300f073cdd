import {
  DEFAULT_SORT,
  IReport,
  IStats,
  IVariable,
  changesHistory,
  changesVariables,
  cleanupText,
  cudaText,
  currentPressure,
  formatAgo,
  formatBytes,
  isGreedKernel,
  nextSort,
  parseEvent,
  parseStats,
  pressureLevel,
  recentReports,
  rowActions,
  sortVariables,
  statusView,
  touchedText
} from '../src/logic';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function stats(extra: Partial<IStats> = {}): IStats {
  return { ...parseStats({})!, ...extra };
}

function report(extra: Partial<IReport> = {}): IReport {
  return {
    kind: 'cleanup',
    trigger: 'manual',
    executionCount: 3,
    time: 1000,
    durationMs: 12.5,
    rssBefore: 900 * MiB,
    rssAfter: 88 * MiB,
    freedBytes: 812 * MiB,
    ...extra
  };
}

function variable(name: string, extra: Partial<IVariable> = {}): IVariable {
  return {
    name,
    type: 'Tensor',
    size: 0,
    device: 'cpu',
    lastTouchedAgo: 1,
    lastTouchedCell: 1,
    decision: 'keep',
    rule: 'recent',
    reason: '',
    spilled: false,
    ...extra
  };
}

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [MiB, '1.0 MiB'], // torch.zeros(1024, 256): 1 MiB of float32
    [812 * MiB, '812 MiB'],
    [1023.96 * 1024, '1.0 MiB'],
    [1.2 * GiB, '1.2 GiB'],
    [10 * GiB, '10 GiB'],
    [-2048, '-2.0 KiB']
  ])('%p -> %p', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('never throws on junk', () => {
    expect(formatBytes(NaN)).toBe('? B');
    expect(formatBytes(Infinity)).toBe('? B');
    expect(formatBytes('12' as unknown as number)).toBe('? B');
  });
});

describe('formatAgo', () => {
  it.each([
    [null, 'never'],
    [-3, '0 s ago'],
    [0.4, '0 s ago'],
    [12, '12 s ago'],
    [89, '89 s ago'],
    [180, '3 min ago'],
    [5399, '90 min ago'],
    [5400, '1.5 h ago']
  ])('%p -> %p', (s, text) => {
    expect(formatAgo(s)).toBe(text);
  });
});

describe('pressure', () => {
  it('levels against the threshold', () => {
    expect(pressureLevel(0.1, 0.8)).toBe('normal');
    expect(pressureLevel(0.71, 0.8)).toBe('normal');
    expect(pressureLevel(0.72, 0.8)).toBe('warning');
    expect(pressureLevel(0.8, 0.8)).toBe('warning'); // the kernel triggers above it
    expect(pressureLevel(0.81, 0.8)).toBe('danger');
    expect(pressureLevel(0.5, 0.5)).toBe('warning');
    expect(pressureLevel(0.46, 0.5)).toBe('warning');
    expect(pressureLevel(0.6, 0.5)).toBe('danger');
  });

  it('uses the default threshold when disabled or invalid', () => {
    expect(pressureLevel(0.85, 0)).toBe('danger');
    expect(pressureLevel(0.75, NaN)).toBe('warning');
    expect(pressureLevel(0.5, 7)).toBe('normal');
    expect(pressureLevel(NaN, 0.8)).toBe('normal');
  });

  it('is computed from RSS and CUDA like the kernel', () => {
    expect(
      currentPressure(stats({ rssBytes: GiB, memoryLimitBytes: 4 * GiB }))
    ).toBe(0.25);
    const gpu = stats({
      rssBytes: GiB,
      memoryLimitBytes: 4 * GiB,
      cuda: [{ device: '0', allocated: 0, reserved: 6 * GiB, total: 8 * GiB }]
    });
    expect(currentPressure(gpu)).toBe(0.75);
    expect(currentPressure(stats({ memoryPressure: 0.4 }))).toBe(0.4);
    expect(currentPressure(stats({ rssBytes: 9, memoryLimitBytes: 3 }))).toBe(
      1
    );
  });
});

describe('cleanupText and statusView', () => {
  it('says when and how much', () => {
    expect(cleanupText(report(), 1000_000 + 180_000)).toBe(
      'cleanup 3 min ago, freed 812 MiB'
    );
    expect(cleanupText(report({ time: null }), 0)).toBe(
      'cleanup at cell 3, freed 812 MiB'
    );
    expect(cleanupText(null, 0)).toBe('no cleanup yet');
    // a kernel clock ahead of ours never gives "-2 s"
    expect(cleanupText(report({ time: 2000 }), 1000_000)).toBe(
      'cleanup 0 s ago, freed 812 MiB'
    );
  });

  it('shows RSS, pressure, CUDA and the last cleanup', () => {
    const view = statusView(
      stats({
        rssBytes: 3 * GiB,
        memoryLimitBytes: 4 * GiB,
        version: '0.1.0',
        cuda: [
          { device: '0', allocated: GiB, reserved: 2 * GiB, total: 80 * GiB }
        ]
      }),
      0.8,
      report(),
      1000_000 + 5_000
    );
    expect(view.text).toBe(
      'RSS 3.0 GiB (75%) · cuda:0 2.0 GiB / 80 GiB · cleanup 5 s ago, freed 812 MiB'
    );
    expect(view.level).toBe('warning');
    expect(view.title).toContain('threshold 80%');
    expect(view.title).toContain('RSS 3.0 GiB of 4.0 GiB');
  });

  it('says when the pressure trigger is off', () => {
    const view = statusView(stats({ rssBytes: GiB }), 0, null, 0);
    expect(view.title).toContain('pressure trigger off');
    expect(view.text).toBe('RSS 1.0 GiB (0%) · no cleanup yet');
  });

  it('names CUDA devices', () => {
    expect(
      cudaText([{ device: '1', allocated: 0, reserved: MiB, total: 0 }])
    ).toEqual(['cuda:1 1.0 MiB']);
  });
});

describe('parseEvent', () => {
  const STATS = {
    executionCount: 4,
    avgExecutionTime: 1.5,
    memoryPressure: 0.2,
    idleTime: 10,
    preservedVariables: ['x'],
    cleanupCount: 1,
    optimizeCount: 0,
    lastCleanup: 3,
    rssBytes: 500 * MiB,
    memoryLimitBytes: 8 * GiB,
    cuda: [{ device: 0, allocated: 1, reserved: 2, total: 3 }],
    version: '0.1.0',
    spilled: [],
    spilledBytes: 0,
    somethingNew: true
  };

  it('reads hello with the threshold', () => {
    const event = parseEvent({
      event: 'hello',
      version: '0.1.0',
      stats: STATS,
      config: { memory_threshold: 0.6 }
    });
    expect(event).toMatchObject({
      event: 'hello',
      version: '0.1.0',
      config: { memoryThreshold: 0.6 }
    });
    if (event?.event !== 'hello') {
      throw new Error('not hello');
    }
    expect(event.stats.rssBytes).toBe(500 * MiB);
    expect(event.stats.cuda).toEqual([
      { device: '0', allocated: 1, reserved: 2, total: 3 }
    ]);
    expect(event.stats.lastCleanup).toBe(3);
  });

  it('defaults a missing threshold', () => {
    const event = parseEvent({ event: 'hello', stats: STATS });
    expect(event).toMatchObject({ config: { memoryThreshold: 0.8 } });
  });

  it('reads cleanup reports', () => {
    const event = parseEvent({
      event: 'execution:cleanup',
      stats: STATS,
      report: {
        kind: 'cleanup',
        trigger: 'manual',
        executionCount: 4,
        time: 1700000000.5,
        durationMs: 3.2,
        rssBefore: 2 * GiB,
        rssAfter: GiB,
        freedBytes: GiB,
        deleted: ['tmp']
      }
    });
    expect(event).toMatchObject({
      event: 'execution:cleanup',
      report: { kind: 'cleanup', freedBytes: GiB, time: 1700000000.5 }
    });
  });

  it('reads an oom report (ramFreedBytes)', () => {
    const event = parseEvent({
      event: 'memory:oom',
      stats: STATS,
      report: { kind: 'oom', rssBefore: 10, rssAfter: 4, ramFreedBytes: 6 }
    });
    expect(event).toMatchObject({
      report: { kind: 'oom', freedBytes: 6, time: null }
    });
  });

  it('reads vars, dropping malformed rows', () => {
    const event = parseEvent({
      event: 'vars',
      variables: [
        {
          name: 'x',
          type: 'Tensor',
          size: MiB,
          device: 'cpu',
          lastTouchedAgo: 2.5,
          lastTouchedCell: 3,
          decision: 'keep',
          rule: 'recent',
          reason: 'kept: touched 2 s ago',
          spilled: false
        },
        { type: 'no name' },
        'junk',
        { name: 'y', size: 'big', spilled: 'yes' }
      ],
      omitted: 2
    });
    if (event?.event !== 'vars') {
      throw new Error('not vars');
    }
    expect(event.omitted).toBe(2);
    expect(event.variables.map(v => v.name)).toEqual(['x', 'y']);
    expect(event.variables[0]).toMatchObject({
      size: MiB,
      device: 'cpu',
      lastTouchedCell: 3
    });
    expect(event.variables[1]).toMatchObject({
      size: 0,
      spilled: false,
      device: null
    });
  });

  it('reads history, events with names, errors', () => {
    expect(
      parseEvent({
        event: 'history',
        reports: [{ kind: 'cleanup' }, { nope: 1 }]
      })
    ).toMatchObject({
      event: 'history',
      reports: [{ kind: 'cleanup', freedBytes: 0 }]
    });
    expect(parseEvent({ event: 'preserved', names: ['a', 3] })).toEqual({
      event: 'preserved',
      names: ['a']
    });
    expect(parseEvent({ event: 'error', message: 'nope' })).toEqual({
      event: 'error',
      message: 'nope'
    });
    expect(
      parseEvent({
        event: 'spill:restore',
        stats: STATS,
        names: ['w'],
        bytes: 5
      })
    ).toMatchObject({ names: ['w'], bytes: 5 });
  });

  it('rejects what is not an event', () => {
    for (const junk of [
      null,
      undefined,
      42,
      'hello',
      [],
      {},
      { event: 7 },
      { event: 'unknown:thing', stats: STATS },
      { event: 'hello' },
      { event: 'stats', stats: [] },
      { event: 'execution:cleanup', stats: STATS },
      { event: 'execution:cleanup', stats: STATS, report: { kind: 5 } },
      { event: 'vars', variables: 'x' },
      { event: 'history' }
    ]) {
      expect(parseEvent(junk)).toBeNull();
    }
  });

  it('cleans numbers', () => {
    const s = parseStats({
      rssBytes: -5,
      memoryPressure: 7,
      lastCleanup: 'x',
      cuda: 'no'
    })!;
    expect(s).toMatchObject({
      rssBytes: 0,
      memoryPressure: 1,
      lastCleanup: null,
      cuda: []
    });
  });
});

describe('kernels', () => {
  it('knows a Greed kernel by spec name or implementation', () => {
    expect(isGreedKernel('greed')).toBe(true);
    expect(isGreedKernel('my-env', 'greed')).toBe(true);
    expect(isGreedKernel('python3', 'ipython')).toBe(false);
    expect(isGreedKernel(undefined)).toBe(false);
  });
});

describe('variables table', () => {
  const rows = [
    variable('b', { size: 10, lastTouchedAgo: 50, device: null, type: 'int' }),
    variable('a', { size: 300, lastTouchedAgo: null, decision: 'stale' }),
    variable('C', { size: 300, lastTouchedAgo: 5, spilled: true }),
    variable('d', { size: 20, lastTouchedAgo: 1, device: 'cuda:0' })
  ];
  const names = (list: IVariable[]) => list.map(r => r.name);

  it('sorts by size, largest first by default, ties by name', () => {
    expect(names(sortVariables(rows, DEFAULT_SORT))).toEqual([
      'a',
      'C',
      'd',
      'b'
    ]);
    expect(
      names(sortVariables(rows, { key: 'size', ascending: true }))
    ).toEqual(['b', 'd', 'a', 'C']);
  });

  it('sorts names case-insensitively and puts missing values last', () => {
    expect(
      names(sortVariables(rows, { key: 'name', ascending: true }))
    ).toEqual(['a', 'b', 'C', 'd']);
    expect(
      names(sortVariables(rows, { key: 'lastTouched', ascending: true }))
    ).toEqual(['d', 'C', 'b', 'a']);
    expect(
      names(sortVariables(rows, { key: 'lastTouched', ascending: false }))
    ).toEqual(['b', 'C', 'd', 'a']);
    expect(
      names(sortVariables(rows, { key: 'device', ascending: true }))
    ).toEqual(['a', 'C', 'd', 'b']);
    expect(
      names(sortVariables(rows, { key: 'spilled', ascending: false }))[0]
    ).toBe('C');
  });

  it('does not change its input', () => {
    const copy = [...rows];
    sortVariables(rows, { key: 'name', ascending: false });
    expect(rows).toEqual(copy);
  });

  it('toggles direction on the same header', () => {
    expect(nextSort(DEFAULT_SORT, 'size')).toEqual({
      key: 'size',
      ascending: true
    });
    expect(nextSort(DEFAULT_SORT, 'name')).toEqual({
      key: 'name',
      ascending: true
    });
    expect(nextSort({ key: 'name', ascending: true }, 'name')).toEqual({
      key: 'name',
      ascending: false
    });
    expect(nextSort({ key: 'name', ascending: true }, 'size')).toEqual({
      key: 'size',
      ascending: false
    });
  });

  it('offers the right actions', () => {
    expect(rowActions(variable('x', { spilled: true }))).toEqual(['restore']);
    expect(rowActions(variable('x', { rule: 'marked' }))).toEqual([
      'unpreserve'
    ]);
    expect(rowActions(variable('x', { rule: 'preserved' }))).toEqual([
      'unpreserve'
    ]);
    expect(rowActions(variable('x', { rule: 'stale' }))).toEqual(['preserve']);
  });

  it('says when a row was touched', () => {
    expect(
      touchedText(variable('x', { lastTouchedAgo: 200, lastTouchedCell: 4 }))
    ).toBe('3 min ago (cell 4)');
    expect(touchedText(variable('x', { lastTouchedAgo: null }))).toBe('never');
  });
});

describe('history and refreshes', () => {
  it('lists the newest reports first', () => {
    const reports = [1, 2, 3].map(n => report({ executionCount: n }));
    expect(recentReports(reports, 2).map(r => r.executionCount)).toEqual([
      3, 2
    ]);
  });

  it('knows which events change the table and the history', () => {
    expect(changesVariables('execution:cleanup')).toBe(true);
    expect(changesVariables('preserved')).toBe(true);
    expect(changesVariables('stats')).toBe(false);
    expect(changesVariables('vars')).toBe(false); // no loop
    expect(changesHistory('execution:optimize')).toBe(true);
    expect(changesHistory('history')).toBe(false);
  });
});
