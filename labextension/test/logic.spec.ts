import {
  DEFAULT_SORT,
  IHolder,
  IMemoryBudget,
  IReport,
  IStats,
  IVariable,
  budgetText,
  changesHistory,
  changesVariables,
  cleanupText,
  cudaText,
  currentPressure,
  formatAgo,
  formatBytes,
  formatUsage,
  holdersText,
  holdersTitle,
  isGreedKernel,
  namesText,
  nextSort,
  pagedCell,
  parseEvent,
  parseHistory,
  parsePreviousKernel,
  parseRestored,
  parseStats,
  parseVariables,
  pressureLevel,
  ramFraction,
  recentReports,
  reportPressureText,
  restoredText,
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
    paged: [],
    pagedBytes: 0,
    pressureBefore: null,
    pressureAfter: null,
    ...extra
  };
}

function budget(extra: Partial<IMemoryBudget> = {}): IMemoryBudget {
  return {
    limitBytes: 1.5 * GiB,
    unreclaimableBytes: 1.1 * GiB,
    pagedBytes: 0,
    threshold: 0.8,
    lowWatermark: 0.7,
    held: true,
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
    pagedBytes: 0,
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
    paged: ['w'],
    pagedOmitted: 0,
    pagedBytes: 64 * MiB,
    pagingDirectory: '/var/tmp',
    pagingNotice: '',
    memoryBudget: {
      limitBytes: 8 * GiB,
      unreclaimableBytes: 2 * GiB,
      pagedBytes: 64 * MiB,
      threshold: 0.8,
      lowWatermark: 0.7,
      held: true
    },
    somethingNew: true
  };

  it('reads hello with the threshold', () => {
    const event = parseEvent('hello', {
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
    const event = parseEvent('hello', {
      stats: STATS
    });
    expect(event).toMatchObject({ config: { memoryThreshold: 0.8 } });
  });

  it("reads hello's previous kernel, null when it shut down cleanly or is not said", () => {
    const previous = {
      message:
        'Greed: the previous kernel of this notebook died at cell 7 (signal 11).',
      cause: 'signal',
      signal: 11,
      executionCount: 7,
      unreclaimableBytes: 100 * MiB,
      limitBytes: GiB,
      inOneCall: false,
      pid: 123,
      startedAt: 1700000000,
      lastSeenAt: 1700000100
    };
    const event = parseEvent('hello', {
      stats: STATS,
      previousKernel: previous
    });
    expect(event).toMatchObject({ event: 'hello', previousKernel: previous });
    for (const value of [null, undefined, 'killed']) {
      expect(
        parseEvent('hello', { stats: STATS, previousKernel: value })
      ).toMatchObject({ previousKernel: null });
    }
  });

  it('reads cleanup reports', () => {
    const event = parseEvent('execution:cleanup', {
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
    const event = parseEvent('memory:oom', {
      stats: STATS,
      report: { kind: 'oom', rssBefore: 10, rssAfter: 4, ramFreedBytes: 6 }
    });
    expect(event).toMatchObject({
      report: { kind: 'oom', freedBytes: 6, time: null }
    });
  });

  it('reads vars, dropping malformed rows', () => {
    const vars = parseVariables({
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
          pagedBytes: 512 * 1024,
          somethingNew: true
        },
        { type: 'no name' },
        'junk',
        { name: 'y', size: 'big', pagedBytes: 'lots', decision: 'maybe' }
      ],
      omitted: 2
    });
    if (!vars) {
      throw new Error('not vars');
    }
    expect(vars.omitted).toBe(2);
    expect(vars.variables.map(v => v.name)).toEqual(['x', 'y']);
    expect(vars.variables[0]).toMatchObject({
      size: MiB,
      device: 'cpu',
      lastTouchedCell: 3,
      pagedBytes: 512 * 1024
    });
    expect(vars.variables[1]).toMatchObject({
      size: 0,
      pagedBytes: 0,
      device: null,
      decision: '?'
    });
    expect(parseVariables({ variables: 'x' })).toBeNull();
  });

  it('reads history and restore results', () => {
    expect(
      parseHistory({
        reports: [
          { kind: 'cleanup', trigger: 'sometime' },
          { kind: 'tidy' },
          { nope: 1 }
        ]
      })
    ).toMatchObject([{ kind: 'cleanup', trigger: '', freedBytes: 0 }]);
    expect(parseHistory({})).toBeNull();
    expect(parseRestored({ names: ['w', 3], bytes: 5 })).toEqual({
      names: ['w'],
      bytes: 5
    });
    expect(parseRestored({ names: [] })).toEqual({ names: [], bytes: 0 });
    expect(parseRestored('x')).toBeNull();
  });

  it('reads the paging fields and the budget of STATS', () => {
    const stats = parseStats(STATS)!;
    expect(stats).toMatchObject({
      paged: ['w'],
      pagedOmitted: 0,
      pagedBytes: 64 * MiB,
      pagingDirectory: '/var/tmp',
      pagingNotice: '',
      memoryBudget: {
        limitBytes: 8 * GiB,
        unreclaimableBytes: 2 * GiB,
        held: true
      }
    });
    expect(stats).not.toHaveProperty('spilled');
    // a kernel without a budget, and junk in one
    expect(parseStats({})!.memoryBudget).toBeNull();
    expect(
      parseStats({
        memoryBudget: { limitBytes: -1, threshold: 'x', held: 0 },
        pagedBytes: -3
      })
    ).toMatchObject({
      pagedBytes: 0,
      memoryBudget: {
        limitBytes: 0,
        unreclaimableBytes: 0,
        threshold: 0.8,
        held: true
      }
    });
  });

  it('reads memory:pressure with and without holders', () => {
    expect(
      parseEvent('memory:pressure', {
        stats: STATS
      })
    ).toMatchObject({ event: 'memory:pressure', holders: null });
    const event = parseEvent('memory:pressure', {
      stats: STATS,
      holders: [
        {
          name: 'a',
          bytes: 800 * MiB,
          type: 'list',
          device: null,
          why: 'plain'
        },
        { bytes: 5 },
        { name: 'g', bytes: GiB, type: 'Tensor', device: 'cuda:0', why: 'GPU' }
      ]
    });
    if (event?.event !== 'memory:pressure') {
      throw new Error('not memory:pressure');
    }
    expect(event.holders).toEqual([
      { name: 'a', bytes: 800 * MiB, type: 'list', device: null, why: 'plain' },
      { name: 'g', bytes: GiB, type: 'Tensor', device: 'cuda:0', why: 'GPU' }
    ]);
  });

  it('reads the paging fields of a memory-triggered cleanup', () => {
    const event = parseEvent('execution:cleanup', {
      stats: STATS,
      report: {
        kind: 'cleanup',
        trigger: 'memory',
        freedBytes: 0,
        paged: ['a', 'b', 7],
        pagedBytes: 300 * MiB,
        pressureBefore: 0.85,
        pressureAfter: 0.68
      }
    });
    expect(event).toMatchObject({
      report: {
        trigger: 'memory',
        paged: ['a', 'b'],
        pagedBytes: 300 * MiB,
        pressureBefore: 0.85,
        pressureAfter: 0.68
      }
    });
  });

  it('rejects what is not an event', () => {
    const junk: Array<[string, unknown]> = [
      ['hello', null],
      ['hello', 42],
      ['hello', []],
      ['hello', {}],
      ['unknown:thing', { stats: STATS }],
      ['stats', { stats: STATS }], // a method, not an event
      ['execution:cleanup', { stats: STATS }],
      ['execution:cleanup', { stats: STATS, report: { kind: 5 } }],
      ['restore', { stats: STATS, names: ['w'], bytes: 5 }], // a method
      ['memory:pressure', { holders: [] }]
    ];
    for (const [method, params] of junk) {
      expect(parseEvent(method, params)).toBeNull();
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
    variable('C', { size: 300, lastTouchedAgo: 5, pagedBytes: 200 }),
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
      names(sortVariables(rows, { key: 'paged', ascending: false }))[0]
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
    expect(nextSort(DEFAULT_SORT, 'paged')).toEqual({
      key: 'paged',
      ascending: false
    });
  });

  it('offers the right actions', () => {
    expect(rowActions(variable('x', { pagedBytes: 1 }))).toEqual([
      'restore',
      'preserve'
    ]);
    expect(
      rowActions(variable('x', { pagedBytes: MiB, rule: 'marked' }))
    ).toEqual(['restore', 'unpreserve']);
    expect(rowActions(variable('x', { rule: 'marked' }))).toEqual([
      'unpreserve'
    ]);
    expect(rowActions(variable('x', { rule: 'preserved' }))).toEqual([
      'unpreserve'
    ]);
    expect(rowActions(variable('x', { rule: 'stale' }))).toEqual(['preserve']);
  });

  it('shows the paged bytes of a row', () => {
    expect(pagedCell(variable('x', { pagedBytes: 512 * MiB }))).toBe('512 MiB');
    expect(pagedCell(variable('x'))).toBe('');
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
    expect(changesVariables('hello')).toBe(false);
    expect(changesVariables('memory:pressure')).toBe(true);
    expect(changesHistory('execution:optimize')).toBe(true);
    expect(changesHistory('memory:pressure')).toBe(false);
  });
});

describe('the memory budget', () => {
  it('formats a use against a limit', () => {
    expect(formatUsage(1.1 * GiB, 1.5 * GiB)).toBe('1.1 / 1.5 GiB');
    expect(formatUsage(812 * MiB, 1.5 * GiB)).toBe('812 MiB / 1.5 GiB');
    expect(formatUsage(0, 0)).toBe('0 / 0 B');
  });

  it('computes pressure from the memory counted against the budget', () => {
    const s = stats({
      rssBytes: 1.4 * GiB, // RSS includes what is paged: not what counts
      memoryLimitBytes: 1.5 * GiB,
      memoryBudget: budget({ unreclaimableBytes: 0.75 * GiB })
    });
    expect(ramFraction(s)).toBe(0.5);
    expect(currentPressure(s)).toBe(0.5);
    expect(ramFraction(stats())).toBeNull();
    expect(
      ramFraction(stats({ rssBytes: GiB, memoryLimitBytes: 2 * GiB }))
    ).toBe(0.5);
  });

  it('shows the budget, what is paged and the colour in the status item', () => {
    const view = statusView(
      stats({
        rssBytes: 1.6 * GiB,
        memoryLimitBytes: 1.5 * GiB,
        paged: ['a', 'b'],
        pagedBytes: 512 * MiB,
        pagingDirectory: '/var/tmp',
        memoryBudget: budget({ pagedBytes: 512 * MiB })
      }),
      0.8,
      null,
      0
    );
    expect(view.text).toBe(
      'Mem 1.1 / 1.5 GiB (73%) · 512 MiB paged · no cleanup yet'
    );
    expect(view.level).toBe('warning'); // 73% is from 90% of the 80% threshold
    expect(view.held).toBe(true);
    expect(view.title).toContain(
      '1.1 GiB not reclaimable (RssAnon+RssShmem) of the 1.5 GiB budget; RSS 1.6 GiB'
    );
    expect(view.title).toContain('paged out to disk: 512 MiB of a, b');
    expect(view.title).not.toContain('not held');
  });

  it('says nothing is paged only in the title', () => {
    const view = statusView(
      stats({ memoryBudget: budget({ unreclaimableBytes: 0.6 * GiB }) }),
      0.8,
      null,
      0
    );
    expect(view.text).toBe('Mem 614 MiB / 1.5 GiB (40%) · no cleanup yet');
    expect(view.level).toBe('normal');
    expect(view.title).toContain('paged out to disk: nothing');
  });

  it('follows the live threshold of the budget', () => {
    const s = stats({
      memoryBudget: budget({ unreclaimableBytes: 0.9 * GiB, threshold: 0.5 })
    });
    expect(statusView(s, 0.8, null, 0).level).toBe('danger');
    expect(statusView(s, 0.8, null, 0).title).toContain('threshold 50%');
  });

  it('warns when the budget is not held', () => {
    const view = statusView(
      stats({
        memoryBudget: budget({ unreclaimableBytes: 0.3 * GiB, held: false }),
        pagingNotice: 'paging waits: thread "loader" is running'
      }),
      0.8,
      null,
      0
    );
    expect(view.held).toBe(false);
    expect(view.level).toBe('warning'); // at least: normal pressure is not enough
    expect(view.text).toContain('⚠ budget not held');
    expect(view.title).toContain('budget not held: above the 80% threshold');
    expect(view.title).toContain('paging waits: thread "loader" is running');
    const high = statusView(
      stats({
        memoryBudget: budget({ unreclaimableBytes: 1.4 * GiB, held: false })
      }),
      0.8,
      null,
      0
    );
    expect(high.level).toBe('danger');
  });

  it('writes the panel budget line', () => {
    expect(budgetText(stats())).toBeNull();
    expect(
      budgetText(stats({ memoryBudget: budget({ pagedBytes: 512 * MiB }) }))
    ).toBe(
      'Budget 1.5 GiB: 1.1 GiB not reclaimable (73%), 512 MiB paged out; held (pages out above 80%, down to 70%)'
    );
    expect(budgetText(stats({ memoryBudget: budget({ held: false }) }))).toBe(
      'Budget 1.5 GiB: 1.1 GiB not reclaimable (73%), 0 B paged out; not held: above 80% and nothing more could be paged out'
    );
    expect(
      budgetText(stats({ memoryBudget: budget({ threshold: 0 }) }))
    ).toContain('no pressure trigger');
  });

  it('lists what holds the memory', () => {
    const holders: IHolder[] = [
      {
        name: 'a',
        bytes: 800 * MiB,
        type: 'list',
        device: null,
        why: 'plain Python objects: never paged'
      },
      {
        name: 'g',
        bytes: GiB,
        type: 'Tensor',
        device: 'cuda:0',
        why: 'GPU memory'
      },
      { name: 'c', bytes: 64 * MiB, type: 'ndarray', device: 'cpu', why: '' }
    ];
    expect(holdersText(holders)).toBe(
      'Budget not held: largest in RAM: a (800 MiB, list), g (1.0 GiB, Tensor on cuda:0), c (64 MiB, ndarray)'
    );
    expect(holdersText([])).toBe(
      'Budget not held: none of your values holds the memory'
    );
    expect(holdersTitle(holders)).toBe(
      'a: plain Python objects: never paged\ng: GPU memory'
    );
  });

  it('says what was read back', () => {
    expect(restoredText(['a', 'b'], 512 * MiB)).toBe(
      'Read back 512 MiB of a, b'
    );
    expect(restoredText([], 0)).toBe('Nothing was paged out');
    expect(namesText(['a', 'b', 'c'], 0, undefined, 2)).toBe('a, b and 1 more');
    expect(namesText(['a'], 4)).toBe('a and 4 more');
  });

  it('says how a memory cleanup moved the pressure', () => {
    expect(
      reportPressureText(report({ pressureBefore: 0.85, pressureAfter: 0.68 }))
    ).toBe('pressure 85% → 68%');
    expect(reportPressureText(report())).toBe('');
  });
});

describe('parsePreviousKernel', () => {
  it('needs a message, and defaults the rest', () => {
    expect(parsePreviousKernel({ cause: 'oom' })).toBeNull();
    expect(parsePreviousKernel({ message: '' })).toBeNull();
    expect(
      parsePreviousKernel({ message: 'gone', cause: 'meteor', signal: 9.5 })
    ).toEqual({
      message: 'gone',
      cause: 'unknown',
      signal: 9,
      executionCount: 0,
      unreclaimableBytes: 0,
      limitBytes: 0,
      inOneCall: false,
      pid: 0,
      startedAt: 0,
      lastSeenAt: 0
    });
  });
});
