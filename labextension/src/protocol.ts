/**
 * The `greed` comm's messages (JSON-RPC 2.0), generated from
 * greed_kernel/frontends/protocol.schema.json by scripts/protocol-types.js: do not edit.
 * `jlpm protocol` regenerates this file; test/protocol.spec.ts checks it is current.
 */

/** The JSON-RPC version of every message. */
export const JSONRPC = '2.0';

/** A request's id, echoed in its response (null only in the response to a message whose id could not be read). */
export type Id = string | number | null;

/** Frontend to kernel. Without an id it is a JSON-RPC notification: run, never answered. */
export interface IRequest {
  jsonrpc: '2.0';
  id?: Id;
  method: string;
  params?: {
    [key: string]: unknown;
  };
}

/** Kernel to the frontend that asked: a result or an error, with the request's id. */
export type Response =
  | {
      jsonrpc: '2.0';
      id: Id;
      result: unknown;
    }
  | {
      jsonrpc: '2.0';
      id: Id;
      error: IError;
    };

/** Kernel to every open greed comm: an event, with no id. */
export interface INotification {
  jsonrpc: '2.0';
  method: string;
  params: {
    [key: string]: unknown;
  };
}

export interface IError {
  code: ErrorCode;
  /** One sentence, at most a few hundred characters (a long request is never echoed back). */
  message: string;
}

export type ErrorCode = -32700 | -32600 | -32601 | -32602 | -32603 | -32000;

export type NoParams = Record<string, never>;

/** A variable name: a Python identifier (str.isidentifier()) of at most 256 characters that is not a keyword (keyword.kwlist). greed_kernel/frontends/rules.py checks the same. */
export type Name = string;

export interface INamesParams {
  names: Name[];
}

/** Names the kernel sends: at most 200, the rest counted beside them. */
export type NameList = string[];

export interface INamesResult {
  names: NameList;
  /** Names left out of `names` beyond the first 200. */
  omitted: number;
}

export type Bytes = number;

export type Fraction = number;

export interface ICudaDevice {
  device: number;
  allocated: Bytes;
  reserved: Bytes;
  total: Bytes;
}

export interface ICudaReserved {
  device: number;
  reserved: Bytes;
}

export interface IMemoryBudget {
  limitBytes: Bytes;
  /** RssAnon + RssShmem of the kernel and its children: what counts against the limit. */
  unreclaimableBytes: Bytes;
  pagedBytes: Bytes;
  /** GreedKernel.memory_threshold (0: the pressure trigger is off). */
  threshold: Fraction;
  /** Where a memory-pressure cleanup stops paging out. */
  lowWatermark: Fraction;
  /** False while the kernel could not get back under the threshold. */
  held: boolean;
}

/** The STATS dict: Greed.js's names first, then ours. */
export interface IStats {
  executionCount: number;
  /** Mean run time of user cells, ms. */
  avgExecutionTime: number;
  memoryPressure: Fraction;
  /** ms since the last execution ended. */
  idleTime: number;
  /** Marked, listed and recently touched names. */
  preservedVariables: NameList;
  preservedVariablesOmitted: number;
  cleanupCount: number;
  optimizeCount: number;
  /** The execution count of the last cleanup; null before the first. */
  lastCleanup: number | null;
  rssBytes: Bytes;
  memoryLimitBytes: Bytes;
  cuda: ICudaDevice[];
  version: string;
  memoryBudget: IMemoryBudget;
  /** Names whose memory is paged out. */
  paged: NameList;
  pagedOmitted: number;
  pagedBytes: Bytes;
  /** Where paged-out memory goes; empty until first used. */
  pagingDirectory: string;
  /** Empty, or a sentence: a refused directory, paging waiting for a thread, a failed write. */
  pagingNotice: string;
}

/** GreedKernel's configurable traits and their values (all of them; these are the ones frontends read). */
export interface IConfig {
  cleanup_interval: number;
  optimize_interval: number;
  memory_threshold: Fraction;
  preserve: string[];
  [key: string]: unknown;
}

export type Trigger = 'periodic' | 'memory' | 'idle' | 'manual' | 'oom';

export interface ICleanupReport {
  kind: 'cleanup';
  trigger: Trigger;
  /** Executions completed when it ran. */
  executionCount: number;
  /** Epoch seconds. */
  time: number;
  durationMs: number;
  rssBefore: Bytes;
  rssAfter: Bytes;
  freedBytes: Bytes;
  cudaBefore: ICudaReserved[];
  cudaAfter: ICudaReserved[];
  /** Temporaries deleted. */
  deleted: NameList;
  deletedOmitted?: number;
  /** Stale names deleted (GreedKernel.evict = 'delete'). */
  evicted: NameList;
  evictedOmitted?: number;
  outputsReleased: number;
  errorReleased: boolean;
  /** Names paged out. */
  paged: NameList;
  pagedOmitted?: number;
  pagedBytes: Bytes;
  gcCollected: number;
  /** The oldest generation collected: 2 is the whole heap, 1 the young generations (the whole heap then waits for a quiet moment); null when the optimisation left it to the cleanup that ran with it. */
  gcGeneration?: number | null;
  mallocTrim: boolean;
  preserved: NameList;
  preservedOmitted?: number;
  /** Memory-triggered cleanups only. */
  pressureBefore?: Fraction;
  /** Memory-triggered cleanups only. */
  pressureAfter?: Fraction;
}

export interface IOptimizeReport {
  kind: 'optimize';
  trigger: Trigger;
  executionCount: number;
  /** Epoch seconds. */
  time: number;
  durationMs: number;
  rssBefore: Bytes;
  rssAfter: Bytes;
  freedBytes: Bytes;
  cudaBefore: ICudaReserved[];
  cudaAfter: ICudaReserved[];
  gradsCleared: number;
  gcCollected: number;
  /** The oldest generation collected: 2 is the whole heap, 1 the young generations (the whole heap then waits for a quiet moment); null when the optimisation left it to the cleanup that ran with it. */
  gcGeneration?: number | null;
  /** Devices whose CUDA cache was emptied. */
  cudaEmptied: number[];
}

export interface IOomReport {
  kind: 'oom';
  executionCount: number;
  rssBefore: Bytes;
  rssAfter: Bytes;
  ramFreedBytes: Bytes;
  cudaBefore: ICudaReserved[];
  cudaAfter: ICudaReserved[];
  cudaFreed: Array<{
    device: number;
    bytes: Bytes;
  }>;
}

export type Report = ICleanupReport | IOptimizeReport | IOomReport;

/** One row of `%greed vars`. */
export interface IVariable {
  name: string;
  type: string;
  size: Bytes;
  /** cpu, cuda:N, mixed, ...; null for values not on a torch device. */
  device: string | null;
  /** Seconds since a cell last touched it; null: never. */
  lastTouchedAgo: number | null;
  lastTouchedCell: number | null;
  decision: 'keep' | 'clean' | 'stale';
  rule: string;
  reason: string;
  /** Bytes of its memory paged out to disk (0: all in RAM). */
  pagedBytes: Bytes;
}

/** A value still in RAM when the budget cannot be held. */
export interface IHolder {
  name: string;
  bytes: Bytes;
  type: string;
  device: string | null;
  /** Why it was not paged out. */
  why: string;
}

export interface IMemorySample {
  /** Unix time, seconds. */
  t: number;
  /** RssAnon + RssShmem of the kernel and its children. */
  unreclaimableBytes: Bytes;
  /** Memory paged out to disk or swap. */
  pagedBytes: Bytes;
}

export interface IMemoryMarker {
  /** Unix time, seconds. */
  t: number;
  /** `cleanup`: a periodic, idle, manual or out-of-memory cleanup; `budget`: a memory-pressure cleanup; `guard`: the guard stopped a cell. */
  kind: 'cleanup' | 'budget' | 'guard';
  executionCount: number;
}

export interface IMemoryTimeline {
  limitBytes: Bytes;
  /** GreedKernel.guard_threshold (0: the guard is off). */
  guardThreshold: Fraction;
  /** GreedKernel.memory_threshold, where the budget cleanup starts (0: off). */
  memoryThreshold: Fraction;
  /** Oldest first. */
  samples: IMemorySample[];
  /** Oldest first. */
  markers: IMemoryMarker[];
  /** Cells the guard has stopped in this kernel. */
  guardStops: number;
}

/** One checkpoint of this notebook. */
export interface ICheckpoint {
  id: string;
  /** Unix time it was written. */
  time: number;
  /** The cell whose state it holds. */
  cell: number;
  /** Its size on disk (blobs shared with other checkpoints included). */
  bytes: number;
  /** Names it binds (modules included). */
  names: number;
  /** Names that could not be pickled. */
  unstorable: string[];
  /** Names left out for checkpoint_max_bytes. */
  leftOut: string[];
}

/** The previous kernel of this notebook, which ended without a clean shutdown. */
export interface IPreviousKernel {
  /** The line said under the first cell. */
  message: string;
  /** `oom`: killed by the out-of-memory killer (its cgroup counted the kill, or it was at its limit); `signal`: a fatal signal; `unknown`: it stopped and nothing says why. */
  cause: 'oom' | 'signal' | 'unknown';
  /** The fatal signal's number, where known. */
  signal: number | null;
  /** Its last cell. */
  executionCount: number;
  /** Its memory at its last sample. */
  unreclaimableBytes: Bytes;
  limitBytes: Bytes;
  /** It was stopping a cell that stayed inside one call (a single allocation greed cannot interrupt). */
  inOneCall: boolean;
  pid: number;
  /** Unix time, seconds. */
  startedAt: number;
  /** Unix time of its last sample, seconds. */
  lastSeenAt: number;
}

export interface IVarsResult {
  variables: IVariable[];
  /** Rows left out beyond the first 200. */
  omitted: number;
}

export type RestoreParams =
  | INamesParams
  | {
      all: true;
    };

export interface IRestoreResult {
  names: NameList;
  /** Names left out of `names` beyond the first 200. */
  omitted: number;
  /** Bytes read back. */
  bytes: number;
}

export interface IHistoryResult {
  reports: Report[];
}

export interface ICheckpointsResult {
  checkpoints: ICheckpoint[];
}

export interface IResumeParams {
  id?: string;
}

export interface IResumeResult {
  checkpoint: ICheckpoint;
  bound: NameList;
  /** Names left out of `bound` beyond the first 200. */
  omitted: number;
  /** Names that were stored but could not be restored (a corrupted blob, a failed import), with why. */
  failed: {
    [key: string]: string;
  };
  /** Names that could not be stored: why, and the cell that last touched them. */
  unstorable: Array<{
    name: string;
    reason: string;
    cell: number | null;
  }>;
  /** Names left out for checkpoint_max_bytes, with their group's bytes. */
  leftOut: Array<{
    name: string;
    bytes: number;
  }>;
  notes: string[];
  /** The sources of the cells that last touched the unstorable names, by cell number. */
  replay: {
    [key: string]: string;
  };
  /** From the request to every name bound. */
  seconds: number;
}

export interface IForgetResult {
  /** Bytes freed. */
  bytes: number;
}

export interface IHelloParams {
  /** greed_kernel's version. */
  version: string;
  stats: IStats;
  config: IConfig;
  /** The previous kernel of this notebook, if it died (null otherwise). */
  previousKernel: IPreviousKernel | null;
  /** This notebook's latest checkpoint, which `resume` would bind (null: none). */
  resumable: {
    id: string;
    /** Unix time it was written. */
    time: number;
    /** The cell whose state it holds. */
    cell: number;
    /** Its size on disk. */
    bytes: number;
  } | null;
}

export interface IExecutionCleanupParams {
  stats: IStats;
  report: ICleanupReport;
}

export interface IExecutionOptimizeParams {
  stats: IStats;
  report: IOptimizeReport;
}

export interface IMemoryPressureParams {
  stats: IStats;
  /** The values holding the most memory still in RAM, largest first (only when the budget cannot be held). */
  holders?: IHolder[];
}

export interface IMemoryOomParams {
  stats: IStats;
  report: IOomReport;
}

/** Each method's params and result. */
export interface IGreedMethods {
  /** The kernel's STATS dict, now. */
  stats: { params: NoParams; result: IStats };
  /** Run a cleanup now (trigger `manual`). Its `execution:cleanup` event goes to every comm first; the result is its report. */
  cleanup: { params: NoParams; result: ICleanupReport };
  /** Run an optimisation now (trigger `manual`). Its `execution:optimize` event goes to every comm first; the result is its report. */
  optimize: { params: NoParams; result: IOptimizeReport };
  /** Always keep these names (as `%greed preserve`). */
  preserve: { params: INamesParams; result: INamesResult };
  /** Take back `preserve` for these names. */
  unpreserve: { params: INamesParams; result: INamesResult };
  /** The `%greed vars` table as data, largest first. */
  vars: { params: NoParams; result: IVarsResult };
  /** Read paged-out memory back into RAM now: these names (each must be paged out), or every paged-out name with `all`. */
  restore: { params: RestoreParams; result: IRestoreResult };
  /** The last reports (cleanups, optimisations, out-of-memory recoveries; at most 20), oldest first. */
  history: { params: NoParams; result: IHistoryResult };
  /** The kernel's memory over time (`%greed status` draws none of it; the JupyterLab panel plots it): a bounded ring of samples of non-reclaimable and paged-out memory, taken while cells run, after cells and at this request, with the limit, the guard's and the budget's thresholds, and markers for cleanups, budget cleanups and guard stops. */
  memory: { params: NoParams; result: IMemoryTimeline };
  /** Write this notebook's checkpoint now, whole; answered once it is durable. */
  checkpoint: { params: NoParams; result: ICheckpoint };
  /** This notebook's checkpoints, oldest first. */
  checkpoints: { params: NoParams; result: ICheckpointsResult };
  /** Bind the names of the latest checkpoint, or of the one with this `id`, into the namespace. Nothing is re-run (the magic's `--replay` does that, on request). */
  resume: { params: IResumeParams; result: IResumeResult };
  /** Delete this notebook's checkpoints. */
  forget: { params: NoParams; result: IForgetResult };
}

/** Each event's params. */
export interface IGreedEvents {
  /** Sent once to a comm that just opened, before anything else on it. */
  hello: IHelloParams;
  /** After every cleanup (periodic, memory, idle, manual, oom). */
  'execution:cleanup': IExecutionCleanupParams;
  /** After every optimisation. */
  'execution:optimize': IExecutionOptimizeParams;
  /** When pressure crosses memory_threshold (before the cleanup it triggers); again, with `holders`, when the budget cannot be held. */
  'memory:pressure': IMemoryPressureParams;
  /** After an out-of-memory recovery. */
  'memory:oom': IMemoryOomParams;
}

export type GreedMethod = keyof IGreedMethods;
export type GreedEventName = keyof IGreedEvents;

/** Every method, in the schema's order. */
export const GREED_METHODS: readonly GreedMethod[] = [
  'stats',
  'cleanup',
  'optimize',
  'preserve',
  'unpreserve',
  'vars',
  'restore',
  'history',
  'memory',
  'checkpoint',
  'checkpoints',
  'resume',
  'forget'
];

/** Every event, in the schema's order. */
export const GREED_EVENTS: readonly GreedEventName[] = [
  'hello',
  'execution:cleanup',
  'execution:optimize',
  'memory:pressure',
  'memory:oom'
];

/** The error codes the kernel answers with. */
export const ERROR_CODES = {
  /** The message is not JSON (reserved: the comm layer parses messages, so the kernel never sends it). */
  PARSE_ERROR: -32700,
  /** Not a JSON-RPC 2.0 request object (a batch, a wrong `jsonrpc`, a `method` or `id` of the wrong type, unknown members). */
  INVALID_REQUEST: -32600,
  /** No such method. */
  METHOD_NOT_FOUND: -32601,
  /** `params` is not what the method takes (names too many, too long, not identifiers, not paged out...). */
  INVALID_PARAMS: -32602,
  /** The kernel failed answering (see its log). */
  INTERNAL_ERROR: -32603,
  /** The cleanup or optimisation asked for failed (see the kernel log). */
  OPERATION_FAILED: -32000
} as const;
