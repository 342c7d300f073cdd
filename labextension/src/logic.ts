/**
 * The pure part of the extension: parsing the `greed` comm's messages, and
 * formatting what the status bar and the panel show. Nothing here touches the
 * DOM or JupyterLab, so it is unit-tested on its own (test/logic.spec.ts).
 */

import * as wire from './protocol';

/** The kernel spec name and kernel_info implementation of the Greed kernel. */
export const GREED_KERNEL = 'greed';
/** The comm target the kernel registers. */
export const COMM_TARGET = 'greed';
/** The kernel's default GreedKernel.memory_threshold. */
export const DEFAULT_THRESHOLD = 0.8;
/** Pressure at or above this fraction of the threshold shows as a warning. */
export const WARNING_FRACTION = 0.9;

export type Level = 'normal' | 'warning' | 'danger';

// -- translation ---------------------------------------------------------------------------

/**
 * What formatting needs of JupyterLab's TranslationBundle: `__('%1 s ago', 12)`. The
 * plugins pass the bundle of ITranslator; without one, the English text.
 */
export interface ITrans {
  __(msgid: string, ...args: unknown[]): string;
}

/** English: `%1`, `%2`… replaced by the arguments, as the untranslated bundle does. */
export const NO_TRANSLATION: ITrans = {
  __: (msgid: string, ...args: unknown[]): string =>
    msgid.replace(/%(\d+)/g, (match: string, n: string) => {
      const i = Number(n) - 1;
      return i >= 0 && i < args.length ? String(args[i]) : match;
    })
};

// -- settings ------------------------------------------------------------------------------

/** The refresh rate's default, in seconds (the `refreshRate` setting). */
export const DEFAULT_REFRESH_RATE_S = 5;
/** The shortest and longest refresh rates accepted, in seconds. */
export const MIN_REFRESH_RATE_S = 0.5;
export const MAX_REFRESH_RATE_S = 3600;
/** A failing stats request backs off, up to this long (ms) or 10 refreshes. */
export const MAX_BACKOFF_MS = 300_000;

/**
 * The `refreshRate` setting (seconds) as the poll's interval in ms: clamped to
 * [MIN_REFRESH_RATE_S, MAX_REFRESH_RATE_S], the default when it is not a number.
 */
export function refreshIntervalMs(seconds: unknown): number {
  const s =
    typeof seconds === 'number' && Number.isFinite(seconds)
      ? Math.min(MAX_REFRESH_RATE_S, Math.max(MIN_REFRESH_RATE_S, seconds))
      : DEFAULT_REFRESH_RATE_S;
  return Math.round(s * 1000);
}

/** The poll's longest wait after failures, for a given interval (ms). */
export function maxBackoffMs(intervalMs: number): number {
  return Math.max(intervalMs, Math.min(MAX_BACKOFF_MS, intervalMs * 10));
}

/** A boolean setting, or its default when the value is not a boolean. */
export function booleanSetting(value: unknown, fallback: boolean): boolean {
  return typeof value === 'boolean' ? value : fallback;
}

/**
 * Whether a poll tick asks for stats: stats come no more often than every
 * `intervalMs` (a tick a little early, by up to a quarter of the interval or 250 ms,
 * still counts), only when none is on its way.
 */
export function statsDue(
  nowMs: number,
  statsAtMs: number,
  intervalMs: number,
  pending: boolean
): boolean {
  if (pending) {
    return false;
  }
  const slack = Math.min(250, intervalMs / 4);
  return nowMs - statsAtMs >= intervalMs - slack;
}

/** How long after a cell to ask for stats: at once when the last are `intervalMs` old. */
export function statsDelayMs(
  nowMs: number,
  statsAtMs: number,
  intervalMs: number
): number {
  return Math.max(0, statsAtMs + intervalMs - nowMs);
}

// The parsed messages. Each is a type generated from the protocol schema (./protocol),
// narrowed to what the extension reads; where a parser defaults a field that a kernel
// may leave out or send malformed, the type says so (null, or a device as text).

/** Every field of T, present, and null where the message had no usable value. */
type OrNull<T> = { [K in keyof T]-?: Exclude<T[K], undefined> | null };

/** A CUDA device; `device` as text ("0", or "?" when the message had none). */
export type ICudaDevice = Omit<wire.ICudaDevice, 'device'> & { device: string };

/**
 * The kernel's memory budget (STATS `memoryBudget`): the limit, the memory counted
 * against it (RssAnon + RssShmem of the kernel and its children: what the OS cannot
 * reclaim), what is paged out to disk, and whether the kernel holds it.
 */
export type IMemoryBudget = wire.IMemoryBudget;

/** The kernel's STATS dict, with every field we read checked and defaulted. */
export type IStats = Omit<
  wire.IStats,
  'cuda' | 'memoryBudget' | 'preservedVariablesOmitted'
> & {
  cuda: ICudaDevice[];
  /** Null from a kernel that sends none. */
  memoryBudget: IMemoryBudget | null;
};

/** A cleanup, optimisation or out-of-memory report: the fields the panel shows. */
export type IReport = Pick<
  wire.ICleanupReport,
  'freedBytes' | 'paged' | 'pagedBytes'
> &
  OrNull<
    Pick<
      wire.ICleanupReport,
      | 'executionCount'
      | 'time'
      | 'durationMs'
      | 'rssBefore'
      | 'rssAfter'
      | 'pressureBefore'
      | 'pressureAfter'
    >
  > & {
    kind: wire.Report['kind'];
    /** "" for out-of-memory reports, which have none. */
    trigger: wire.Trigger | '';
  };

/** One row of the `vars` answer. */
export type IVariable = Omit<wire.IVariable, 'decision'> & {
  /** "?" when the row had none. */
  decision: wire.IVariable['decision'] | '?';
};

/** A value still in RAM, listed when the memory budget cannot be held. */
export type IHolder = wire.IHolder;

export interface IConfig {
  memoryThreshold: number;
}

/** The previous kernel of this notebook, when it died (the hello's `previousKernel`). */
export type IPreviousKernel = wire.IPreviousKernel;

/** An event (a notification from the kernel to every open comm), parsed. */
export type GreedEvent =
  | {
      event: 'hello';
      version: string;
      stats: IStats;
      config: IConfig;
      /** Null when it shut down cleanly, or from a kernel that says nothing of it. */
      previousKernel: IPreviousKernel | null;
    }
  | {
      event: 'execution:cleanup' | 'execution:optimize' | 'memory:oom';
      stats: IStats;
      report: IReport;
    }
  | {
      event: 'memory:pressure';
      stats: IStats;
      /** Null but in the event that says the budget cannot be held. */
      holders: IHolder[] | null;
    };

/** The `vars` result, parsed. */
export type IVariables = Omit<wire.IVarsResult, 'variables'> & {
  variables: IVariable[];
};

/** The `restore` result, parsed. */
export type IRestored = Pick<wire.IRestoreResult, 'names' | 'bytes'>;

// Every event parsed is one of the schema's (a compile-time check).
type Within<A, B> = [Exclude<A, B>] extends [never] ? true : Exclude<A, B>;
export const CHECKED_AGAINST_THE_SCHEMA: Within<
  GreedEvent['event'],
  wire.GreedEventName
> = true;

// -- message parsing -----------------------------------------------------------------------

export type Dict = { [key: string]: unknown };

export function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A finite number, else `fallback`. */
export function num(value: unknown, fallback = 0): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

export function numOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function str(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

function strings(value: unknown): string[] {
  return Array.isArray(value)
    ? value.filter((v): v is string => typeof v === 'string')
    : [];
}

function parseCuda(value: unknown): ICudaDevice[] {
  if (!Array.isArray(value)) {
    return [];
  }
  return value.filter(isDict).map(d => ({
    device: String(
      typeof d.device === 'number' || typeof d.device === 'string'
        ? d.device
        : '?'
    ),
    allocated: Math.max(0, num(d.allocated)),
    reserved: Math.max(0, num(d.reserved)),
    total: Math.max(0, num(d.total))
  }));
}

function parseBudget(value: unknown): IMemoryBudget | null {
  if (!isDict(value)) {
    return null;
  }
  return {
    limitBytes: Math.max(0, num(value.limitBytes)),
    unreclaimableBytes: Math.max(0, num(value.unreclaimableBytes)),
    pagedBytes: Math.max(0, num(value.pagedBytes)),
    threshold: clamp01(num(value.threshold, DEFAULT_THRESHOLD)),
    lowWatermark: clamp01(num(value.lowWatermark)),
    held: value.held !== false
  };
}

/** The STATS dict, or null when `value` is not one. */
export function parseStats(value: unknown): IStats | null {
  if (!isDict(value)) {
    return null;
  }
  return {
    executionCount: num(value.executionCount),
    avgExecutionTime: num(value.avgExecutionTime),
    memoryPressure: clamp01(num(value.memoryPressure)),
    idleTime: num(value.idleTime),
    preservedVariables: strings(value.preservedVariables),
    cleanupCount: num(value.cleanupCount),
    optimizeCount: num(value.optimizeCount),
    lastCleanup: numOrNull(value.lastCleanup),
    rssBytes: Math.max(0, num(value.rssBytes)),
    memoryLimitBytes: Math.max(0, num(value.memoryLimitBytes)),
    cuda: parseCuda(value.cuda),
    version: str(value.version),
    paged: strings(value.paged),
    pagedOmitted: Math.max(0, num(value.pagedOmitted)),
    pagedBytes: Math.max(0, num(value.pagedBytes)),
    pagingDirectory: str(value.pagingDirectory),
    pagingNotice: str(value.pagingNotice),
    memoryBudget: parseBudget(value.memoryBudget)
  };
}

const REPORT_KINDS: readonly string[] = ['cleanup', 'optimize', 'oom'];
const TRIGGERS: readonly string[] = [
  'periodic',
  'memory',
  'idle',
  'manual',
  'oom'
];
const DECISIONS: readonly string[] = ['keep', 'clean', 'stale'];

/** `value` if it is one of `allowed`, else `fallback`. */
export function oneOf<T extends string>(
  value: unknown,
  allowed: readonly string[],
  fallback: T
): T {
  return typeof value === 'string' && allowed.includes(value)
    ? (value as T)
    : fallback;
}

/** A report, or null when `value` is not one. */
export function parseReport(value: unknown): IReport | null {
  if (!isDict(value) || !REPORT_KINDS.includes(value.kind as string)) {
    return null;
  }
  const before = numOrNull(value.rssBefore);
  const after = numOrNull(value.rssAfter);
  let freed = numOrNull(value.freedBytes);
  if (freed === null) {
    freed = numOrNull(value.ramFreedBytes); // memory:oom reports
  }
  if (freed === null && before !== null && after !== null) {
    freed = before - after;
  }
  return {
    kind: value.kind as IReport['kind'],
    trigger: oneOf<IReport['trigger']>(value.trigger, TRIGGERS, ''),
    executionCount: numOrNull(value.executionCount),
    time: numOrNull(value.time),
    durationMs: numOrNull(value.durationMs),
    rssBefore: before,
    rssAfter: after,
    freedBytes: Math.max(0, freed ?? 0),
    paged: strings(value.paged),
    pagedBytes: Math.max(0, num(value.pagedBytes)),
    pressureBefore: numOrNull(value.pressureBefore),
    pressureAfter: numOrNull(value.pressureAfter)
  };
}

/** One `vars` row, or null when `value` is not one. */
export function parseVariable(value: unknown): IVariable | null {
  if (!isDict(value) || typeof value.name !== 'string' || !value.name) {
    return null;
  }
  const ago = numOrNull(value.lastTouchedAgo);
  return {
    name: value.name,
    type: str(value.type, '?'),
    size: Math.max(0, num(value.size)),
    device: typeof value.device === 'string' ? value.device : null,
    lastTouchedAgo: ago === null ? null : Math.max(0, ago),
    lastTouchedCell: numOrNull(value.lastTouchedCell),
    decision: oneOf<IVariable['decision']>(value.decision, DECISIONS, '?'),
    rule: str(value.rule),
    reason: str(value.reason),
    pagedBytes: Math.max(0, num(value.pagedBytes))
  };
}

/** One row of `memory:pressure`'s `holders`, or null when `value` is not one. */
export function parseHolder(value: unknown): IHolder | null {
  if (!isDict(value) || typeof value.name !== 'string' || !value.name) {
    return null;
  }
  return {
    name: value.name,
    bytes: Math.max(0, num(value.bytes)),
    type: str(value.type, '?'),
    device: typeof value.device === 'string' ? value.device : null,
    why: str(value.why)
  };
}

const CAUSES: readonly string[] = ['oom', 'signal', 'unknown'];

/**
 * The hello's `previousKernel`, or null when it is null, missing or has no message
 * (there is nothing to show without one).
 */
export function parsePreviousKernel(value: unknown): IPreviousKernel | null {
  if (!isDict(value) || typeof value.message !== 'string' || !value.message) {
    return null;
  }
  const signal = numOrNull(value.signal);
  return {
    message: value.message,
    cause: oneOf<IPreviousKernel['cause']>(value.cause, CAUSES, 'unknown'),
    signal: signal === null ? null : Math.trunc(signal),
    executionCount: Math.max(0, num(value.executionCount)),
    unreclaimableBytes: Math.max(0, num(value.unreclaimableBytes)),
    limitBytes: Math.max(0, num(value.limitBytes)),
    inOneCall: value.inOneCall === true,
    pid: Math.max(0, num(value.pid)),
    startedAt: num(value.startedAt),
    lastSeenAt: num(value.lastSeenAt)
  };
}

/**
 * Check one notification's params and return it as a typed event, or null when it
 * is not a well-formed Greed event (unknown events included).
 */
export function parseEvent(method: string, params: unknown): GreedEvent | null {
  if (!isDict(params)) {
    return null;
  }
  switch (method) {
    case 'hello': {
      const stats = parseStats(params.stats);
      if (!stats) {
        return null;
      }
      const config = isDict(params.config) ? params.config : {};
      const threshold = num(config.memory_threshold, DEFAULT_THRESHOLD);
      return {
        event: method,
        version: str(params.version),
        stats,
        config: { memoryThreshold: clamp01(threshold) },
        previousKernel: parsePreviousKernel(params.previousKernel)
      };
    }
    case 'memory:pressure': {
      const stats = parseStats(params.stats);
      // Only the event saying the budget cannot be held has `holders`.
      const holders = Array.isArray(params.holders)
        ? params.holders
            .map(parseHolder)
            .filter((h): h is IHolder => h !== null)
        : null;
      return stats ? { event: method, stats, holders } : null;
    }
    case 'execution:cleanup':
    case 'execution:optimize':
    case 'memory:oom': {
      const stats = parseStats(params.stats);
      const report = parseReport(params.report);
      return stats && report ? { event: method, stats, report } : null;
    }
    default:
      return null;
  }
}

/** The `vars` result, or null when `value` is not one. */
export function parseVariables(value: unknown): IVariables | null {
  if (!isDict(value) || !Array.isArray(value.variables)) {
    return null;
  }
  const variables = value.variables
    .map(parseVariable)
    .filter((v): v is IVariable => v !== null);
  return { variables, omitted: Math.max(0, num(value.omitted)) };
}

/** The `history` result's reports, or null when `value` is not one. */
export function parseHistory(value: unknown): IReport[] | null {
  if (!isDict(value) || !Array.isArray(value.reports)) {
    return null;
  }
  return value.reports.map(parseReport).filter((r): r is IReport => r !== null);
}

/** The `restore` result, or null when `value` is not one. */
export function parseRestored(value: unknown): IRestored | null {
  if (!isDict(value)) {
    return null;
  }
  return { names: strings(value.names), bytes: Math.max(0, num(value.bytes)) };
}

/** Whether a kernel (spec name, kernel_info implementation) is a Greed kernel. */
export function isGreedKernel(
  specName: string | null | undefined,
  implementation?: string | null
): boolean {
  return specName === GREED_KERNEL || implementation === GREED_KERNEL;
}

// -- formatting ----------------------------------------------------------------------------

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/**
 * Binary units as the kernel writes them: "512 B", "1.0 MiB", "812 MiB", "1.2 GiB";
 * one decimal below 10 units, whole numbers above.
 */
export function formatBytes(n: number): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    return '? B';
  }
  n = Math.trunc(n);
  const sign = n < 0 ? '-' : '';
  n = Math.abs(n);
  if (n < 1024) {
    return `${sign}${n} B`;
  }
  let value = n;
  for (const unit of UNITS) {
    value /= 1024;
    // Round first, so that 1023.96 KiB becomes "1.0 MiB", not "1024 KiB".
    const text = value < 9.95 ? value.toFixed(1) : value.toFixed(0);
    if (Number(text) < 1024 || unit === 'EiB') {
      return `${sign}${text} ${unit}`;
    }
  }
  return `${sign}? B`; // unreachable
}

/** "12 s ago", "3 min ago", "1.5 h ago"; "never" for null. */
export function formatAgo(
  seconds: number | null,
  trans: ITrans = NO_TRANSLATION
): string {
  if (seconds === null || !Number.isFinite(seconds)) {
    return trans.__('never');
  }
  const s = Math.max(0, seconds);
  if (s < 90) {
    return trans.__('%1 s ago', s.toFixed(0));
  }
  if (s < 5400) {
    return trans.__('%1 min ago', (s / 60).toFixed(0));
  }
  return trans.__('%1 h ago', (s / 3600).toFixed(1));
}

/** "45%". */
export function formatPercent(fraction: number): string {
  return `${Math.round(clamp01(fraction) * 100)}%`;
}

export function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

/**
 * The memory pressure to show, as the kernel computes it: the memory counted against
 * the budget (RssAnon + RssShmem) over its limit, and reserved over total of each GPU,
 * whichever is larger; from the snapshot itself, so it is as fresh as the numbers next
 * to it. A kernel without `memoryBudget` gives RSS over the limit; without a limit, the
 * kernel's `memoryPressure` (measured after the last cell).
 */
export function currentPressure(stats: IStats): number {
  const ratios: number[] = [];
  const ram = ramFraction(stats);
  if (ram !== null) {
    ratios.push(ram);
  }
  for (const d of stats.cuda) {
    if (d.total > 0) {
      ratios.push(d.reserved / d.total);
    }
  }
  if (!ratios.length) {
    return stats.memoryPressure;
  }
  return clamp01(Math.max(...ratios));
}

/** The memory counted against the limit over the limit; null without a limit. */
export function ramFraction(stats: IStats): number | null {
  const budget = stats.memoryBudget;
  if (budget && budget.limitBytes > 0) {
    return clamp01(budget.unreclaimableBytes / budget.limitBytes);
  }
  if (stats.memoryLimitBytes > 0) {
    return clamp01(stats.rssBytes / stats.memoryLimitBytes);
  }
  return null;
}

/**
 * The colour level: "danger" above the threshold (where the kernel cleans up),
 * "warning" from WARNING_FRACTION of it, else "normal". A threshold of 0 (the
 * trigger disabled) or an invalid one counts as the default, 0.8.
 */
export function pressureLevel(pressure: number, threshold: number): Level {
  const t =
    Number.isFinite(threshold) && threshold > 0 && threshold <= 1
      ? threshold
      : DEFAULT_THRESHOLD;
  const p = clamp01(pressure);
  if (p > t) {
    return 'danger';
  }
  if (p >= t * WARNING_FRACTION - 1e-9) {
    return 'warning';
  }
  return 'normal';
}

/**
 * A use against a limit, the unit said once when both share it: "1.1 / 1.5 GiB",
 * "812 MiB / 1.5 GiB".
 */
export function formatUsage(used: number, limit: number): string {
  const a = formatBytes(used);
  const b = formatBytes(limit);
  const unitA = a.slice(a.lastIndexOf(' ') + 1);
  const unitB = b.slice(b.lastIndexOf(' ') + 1);
  return unitA === unitB
    ? `${a.slice(0, a.lastIndexOf(' '))} / ${b}`
    : `${a} / ${b}`;
}

/** "a, b, c" and "and 2 more" beyond `limit` names (or what the kernel left out). */
export function namesText(
  names: string[],
  omitted = 0,
  trans: ITrans = NO_TRANSLATION,
  limit = 5
): string {
  const shown = names.slice(0, limit).join(', ');
  const more = omitted + Math.max(0, names.length - limit);
  return more > 0 ? trans.__('%1 and %2 more', shown, more) : shown;
}

/** The threshold the kernel works with: the budget's (live), else the hello's. */
export function effectiveThreshold(stats: IStats, threshold: number): number {
  return stats.memoryBudget ? stats.memoryBudget.threshold : threshold;
}

/** Whether the kernel holds its budget (true from a kernel without one). */
export function budgetHeld(stats: IStats): boolean {
  return stats.memoryBudget?.held ?? true;
}

/**
 * The panel's budget line: "Budget 1.5 GiB: 1.1 GiB not reclaimable (73%), 512 MiB
 * paged out; held (pages out above 80%, down to 70%)"; null from a kernel without one.
 */
export function budgetText(
  stats: IStats,
  trans: ITrans = NO_TRANSLATION
): string | null {
  const b = stats.memoryBudget;
  if (!b) {
    return null;
  }
  let state: string;
  if (!b.held) {
    state = trans.__(
      'not held: above %1 and nothing more could be paged out',
      formatPercent(b.threshold)
    );
  } else if (b.threshold > 0) {
    state = trans.__(
      'held (pages out above %1, down to %2)',
      formatPercent(b.threshold),
      formatPercent(b.lowWatermark)
    );
  } else {
    state = trans.__('no pressure trigger (memory_threshold is 0)');
  }
  const used =
    b.limitBytes > 0
      ? trans.__(
          '%1 not reclaimable (%2)',
          formatBytes(b.unreclaimableBytes),
          formatPercent(b.unreclaimableBytes / b.limitBytes)
        )
      : trans.__('%1 not reclaimable', formatBytes(b.unreclaimableBytes));
  return trans.__(
    'Budget %1: %2, %3 paged out; %4',
    formatBytes(b.limitBytes),
    used,
    formatBytes(b.pagedBytes),
    state
  );
}

/**
 * What `memory:pressure`'s holders say: "Budget not held: largest in RAM: a (800 MiB,
 * list), b (1.0 GiB, Tensor on cuda:0)".
 */
export function holdersText(
  holders: IHolder[],
  trans: ITrans = NO_TRANSLATION
): string {
  if (!holders.length) {
    return trans.__('Budget not held: none of your values holds the memory');
  }
  const rows = holders.map(h =>
    h.device && h.device !== 'cpu'
      ? trans.__(
          '%1 (%2, %3 on %4)',
          h.name,
          formatBytes(h.bytes),
          h.type,
          h.device
        )
      : trans.__('%1 (%2, %3)', h.name, formatBytes(h.bytes), h.type)
  );
  return trans.__('Budget not held: largest in RAM: %1', rows.join(', '));
}

/** Why each holder stays in RAM, a line each (the holders line's title). */
export function holdersTitle(holders: IHolder[]): string {
  return holders
    .filter(h => h.why)
    .map(h => `${h.name}: ${h.why}`)
    .join('\n');
}

/** The answer to "Read back": "Read back 512 MiB of a, b". */
export function restoredText(
  names: string[],
  bytes: number,
  trans: ITrans = NO_TRANSLATION
): string {
  if (!names.length) {
    return trans.__('Nothing was paged out');
  }
  return trans.__(
    'Read back %1 of %2',
    formatBytes(bytes),
    namesText(names, 0, trans)
  );
}

/** A memory-triggered cleanup's "pressure 85% → 68%"; "" for others. */
export function reportPressureText(
  report: IReport,
  trans: ITrans = NO_TRANSLATION
): string {
  if (report.pressureBefore === null || report.pressureAfter === null) {
    return '';
  }
  return trans.__(
    'pressure %1 → %2',
    formatPercent(report.pressureBefore),
    formatPercent(report.pressureAfter)
  );
}

/** Seconds since a report, by this browser's clock; null when it has no time. */
export function reportAge(report: IReport, nowMs: number): number | null {
  if (report.time === null) {
    return null;
  }
  return Math.max(0, nowMs / 1000 - report.time);
}

/** "cleanup 3 min ago, freed 812 MiB"; "no cleanup yet" without one. */
export function cleanupText(
  report: IReport | null,
  nowMs: number,
  trans: ITrans = NO_TRANSLATION
): string {
  if (!report) {
    return trans.__('no cleanup yet');
  }
  const age = reportAge(report, nowMs);
  const freed = formatBytes(report.freedBytes);
  if (age !== null) {
    return trans.__(
      '%1 %2, freed %3',
      report.kind,
      formatAgo(age, trans),
      freed
    );
  }
  if (report.executionCount !== null) {
    return trans.__(
      '%1 at cell %2, freed %3',
      report.kind,
      report.executionCount,
      freed
    );
  }
  return trans.__('%1, freed %2', report.kind, freed);
}

/** "cuda:0 1.2 GiB / 80 GiB" for each GPU with memory reserved or total known. */
export function cudaText(devices: ICudaDevice[]): string[] {
  return devices.map(d => {
    const name = /^\d+$/.test(d.device) ? `cuda:${d.device}` : d.device;
    return d.total > 0
      ? `${name} ${formatBytes(d.reserved)} / ${formatBytes(d.total)}`
      : `${name} ${formatBytes(d.reserved)}`;
  });
}

/** What the status bar item says and its level. */
export interface IStatusView {
  text: string;
  title: string;
  level: Level;
  /** False while the kernel could not hold its memory budget. */
  held: boolean;
}

export function statusView(
  stats: IStats,
  threshold: number,
  lastCleanup: IReport | null,
  nowMs: number,
  trans: ITrans = NO_TRANSLATION
): IStatusView {
  const t = effectiveThreshold(stats, threshold);
  const pressure = currentPressure(stats);
  const held = budgetHeld(stats);
  let level = pressureLevel(pressure, t);
  if (!held && level === 'normal') {
    level = 'warning';
  }
  const percent = formatPercent(pressure);
  const rss = formatBytes(stats.rssBytes);
  const b = stats.memoryBudget;
  const parts: string[] = [];
  if (b && b.limitBytes > 0) {
    parts.push(
      trans.__(
        'Mem %1 (%2)',
        formatUsage(b.unreclaimableBytes, b.limitBytes),
        formatPercent(b.unreclaimableBytes / b.limitBytes)
      )
    );
  } else {
    parts.push(trans.__('RSS %1 (%2)', rss, percent));
  }
  if (stats.pagedBytes > 0) {
    parts.push(trans.__('%1 paged', formatBytes(stats.pagedBytes)));
  }
  if (!held) {
    parts.push(trans.__('⚠ budget not held'));
  }
  parts.push(...cudaText(stats.cuda));
  parts.push(cleanupText(lastCleanup, nowMs, trans));
  const title = [
    stats.version
      ? trans.__('Greed kernel %1: click for variables', stats.version)
      : trans.__('Greed kernel: click for variables'),
    t > 0
      ? trans.__('memory pressure %1 (threshold %2)', percent, formatPercent(t))
      : trans.__(
          'memory pressure %1 (pressure trigger off; colours from %2)',
          percent,
          formatPercent(DEFAULT_THRESHOLD)
        )
  ];
  if (b && b.limitBytes > 0) {
    title.push(
      trans.__(
        '%1 not reclaimable (RssAnon+RssShmem) of the %2 budget; RSS %3',
        formatBytes(b.unreclaimableBytes),
        formatBytes(b.limitBytes),
        rss
      )
    );
  } else {
    title.push(
      stats.memoryLimitBytes > 0
        ? trans.__('RSS %1 of %2', rss, formatBytes(stats.memoryLimitBytes))
        : trans.__('RSS %1', rss)
    );
  }
  if (stats.pagedBytes > 0 || stats.paged.length) {
    title.push(
      trans.__(
        'paged out to disk: %1 of %2',
        formatBytes(stats.pagedBytes),
        namesText(stats.paged, stats.pagedOmitted, trans)
      )
    );
  } else if (b) {
    title.push(trans.__('paged out to disk: nothing'));
  }
  if (!held) {
    title.push(
      trans.__(
        'budget not held: above the %1 threshold and nothing more could be paged out',
        formatPercent(t)
      )
    );
  }
  if (stats.pagingNotice) {
    title.push(stats.pagingNotice);
  }
  title.push(
    trans.__(
      '%1 cells, %2 cleanups, %3 optimisations',
      stats.executionCount,
      stats.cleanupCount,
      stats.optimizeCount
    )
  );
  return { text: parts.join(' · '), title: title.join('\n'), level, held };
}

// -- the variables table ---------------------------------------------------------------------

export type SortKey =
  'name' | 'type' | 'size' | 'device' | 'lastTouched' | 'decision' | 'paged';

export interface ISort {
  key: SortKey;
  ascending: boolean;
}

/** The kernel's own order: largest first. */
export const DEFAULT_SORT: ISort = { key: 'size', ascending: false };

/** Clicking a header: the same key flips direction, a new key starts at its natural one. */
export function nextSort(current: ISort, key: SortKey): ISort {
  if (current.key === key) {
    return { key, ascending: !current.ascending };
  }
  // Sizes (paged ones too) start largest first; everything else (last touched: most
  // recent first) ascending.
  return { key, ascending: key !== 'size' && key !== 'paged' };
}

function sortValue(row: IVariable, key: SortKey): string | number | null {
  switch (key) {
    case 'size':
      return row.size;
    case 'lastTouched':
      return row.lastTouchedAgo;
    case 'paged':
      return row.pagedBytes;
    case 'device':
      return row.device;
    default:
      return row[key];
  }
}

function compare(a: string | number, b: string | number): number {
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  const x = String(a).toLowerCase();
  const y = String(b).toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A sorted copy of `rows`: missing values (never touched, no device) last in
 * either direction, ties broken by name so the order is stable.
 */
export function sortVariables(rows: IVariable[], sort: ISort): IVariable[] {
  const sign = sort.ascending ? 1 : -1;
  return rows
    .map((row, index) => ({ row, index }))
    .sort((a, b) => {
      const x = sortValue(a.row, sort.key);
      const y = sortValue(b.row, sort.key);
      if (x === null || y === null) {
        if (x !== y) {
          return x === null ? 1 : -1;
        }
      } else {
        const c = compare(x, y);
        if (c !== 0) {
          return sign * c;
        }
      }
      return compare(a.row.name, b.row.name) || a.index - b.index;
    })
    .map(item => item.row);
}

/** "3 min ago (cell 4)", "never". */
export function touchedText(
  row: IVariable,
  trans: ITrans = NO_TRANSLATION
): string {
  if (row.lastTouchedAgo === null) {
    return trans.__('never');
  }
  const ago = formatAgo(row.lastTouchedAgo, trans);
  return row.lastTouchedCell === null
    ? ago
    : trans.__('%1 (cell %2)', ago, row.lastTouchedCell);
}

/** The paged column: "512 MiB", or "" for a value all in RAM. */
export function pagedCell(row: IVariable): string {
  return row.pagedBytes > 0 ? formatBytes(row.pagedBytes) : '';
}

/**
 * The per-row actions: preserve or unpreserve, with "restore" (read back into RAM)
 * first for a value with memory paged out.
 */
export function rowActions(
  row: IVariable
): Array<'restore' | 'preserve' | 'unpreserve'> {
  const mark: 'preserve' | 'unpreserve' =
    row.rule === 'marked' || row.rule === 'preserved'
      ? 'unpreserve'
      : 'preserve';
  return row.pagedBytes > 0 ? ['restore', mark] : [mark];
}

/** The newest reports first, at most `limit`. */
export function recentReports(reports: IReport[], limit = 10): IReport[] {
  return reports.slice(-limit).reverse();
}

/** Which events change what the variables table shows. */
export function changesVariables(event: GreedEvent['event']): boolean {
  return [
    'execution:cleanup',
    'execution:optimize',
    'memory:oom',
    'memory:pressure'
  ].includes(event);
}

/** Which events change the history. */
export function changesHistory(event: GreedEvent['event']): boolean {
  return ['execution:cleanup', 'execution:optimize', 'memory:oom'].includes(
    event
  );
}
