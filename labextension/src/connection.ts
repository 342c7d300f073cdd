/**
 * One notebook's or console's link to its kernel's `greed` comm.
 *
 * On a Greed kernel (spec name or kernel_info implementation "greed") it opens
 * the comm once the kernel is up, keeps the latest stats, variables,
 * history and memory timeline (and what the hello said of the previous kernel), and opens a new comm after a restart or a change of kernel. On any
 * other kernel it opens nothing.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import {
  CommsOverSubshells,
  Kernel,
  KernelMessage
} from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import {
  COMM_TARGET,
  DEFAULT_THRESHOLD,
  GreedEvent,
  IHolder,
  IPreviousKernel,
  IReport,
  IStats,
  IVariable,
  isGreedKernel,
  parseEvent,
  parseHistory,
  parseStats,
  parseVariables
} from './logic';
import { ERROR_CODES, GreedMethod } from './protocol';
import {
  GreedRequest,
  GreedRequestError,
  Incoming,
  PendingRequests,
  readMessage,
  requestMessage
} from './rpc';
import { IMemoryTimeline, parseMemoryTimeline } from './timeline';

/** Where the connection stands. */
export type ConnectionState =
  | 'none' // no kernel, or not a Greed kernel
  | 'checking' // waiting for kernel_info to tell
  | 'waiting' // a Greed kernel, not ready for a comm yet (starting, restarting)
  | 'opening' // comm_open sent, no hello yet
  | 'open' // hello received
  | 'closed'; // the kernel closed the comm: not reopened until a restart

/** A request older than this counts as lost (an interrupted or restarted kernel). */
const PENDING_TIMEOUT_MS = 30_000;

export class GreedConnection {
  constructor(readonly sessionContext: ISessionContext) {
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.statusChanged.connect(this._onStatusChanged, this);
    sessionContext.connectionStatusChanged.connect(this._onStatusChanged, this);
    this._attach(sessionContext.session?.kernel ?? null);
  }

  /** Something shown changed: state, stats, variables, history or the last error. */
  get changed(): ISignal<this, string> {
    return this._changed;
  }

  /** Every well-formed event (notification) from the kernel. */
  get received(): ISignal<this, GreedEvent> {
    return this._received;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** True on a Greed kernel, whether or not the comm is open right now. */
  get isGreed(): boolean {
    return this._state !== 'none' && this._state !== 'checking';
  }

  get isOpen(): boolean {
    return this._state === 'open' && this._comm !== null;
  }

  get stats(): IStats | null {
    return this._stats;
  }

  get threshold(): number {
    return this._threshold;
  }

  get version(): string {
    return this._version;
  }

  /** The last cleanup's report (from events, or the history asked for on hello). */
  get lastCleanup(): IReport | null {
    return this._lastCleanup;
  }

  get variables(): IVariable[] | null {
    return this._variables;
  }

  get omitted(): number {
    return this._omitted;
  }

  get history(): IReport[] | null {
    return this._history;
  }

  /** The last `memory` answer: memory over time, its thresholds and markers. */
  get memory(): IMemoryTimeline | null {
    return this._memory;
  }

  /**
   * False once the kernel answered `memory` with METHOD_NOT_FOUND (a greed kernel
   * older than the method): the panel then shows no plot and asks no more.
   */
  get memorySupported(): boolean {
    return this._memorySupported;
  }

  /** A `memory` request is already on its way. */
  get memoryPending(): boolean {
    return this._pending.has('memory');
  }

  /** The previous kernel of this notebook, when the hello said it died; else null. */
  get previousKernel(): IPreviousKernel | null {
    return this._previousKernel;
  }

  /**
   * What holds the memory when the budget cannot be held (the last `memory:pressure`
   * with holders), until stats say the budget is held again; null meanwhile.
   */
  get holders(): IHolder[] | null {
    return this._holders;
  }

  /** The last error answer's message, until the next successful answer. */
  get error(): string {
    return this._error;
  }

  /** When stats last arrived (ms since the epoch; 0: never). */
  get statsAt(): number {
    return this._statsAt;
  }

  /** The kernel is idle, so a request is answered at once. */
  get kernelIdle(): boolean {
    return this.sessionContext.session?.kernel?.status === 'idle';
  }

  /** A stats request is already on its way. */
  get statsPending(): boolean {
    return this._pending.has('stats');
  }

  /**
   * Send a request on the open comm. The promise resolves with its result, or rejects
   * (GreedRequestError) with the kernel's error, when it cannot be sent, when the comm
   * closes or the kernel restarts first, or when no answer comes within
   * PENDING_TIMEOUT_MS. Only the answer with the request's id settles it.
   */
  request(request: GreedRequest): Promise<unknown> {
    const comm = this._comm;
    if (!comm || this._state !== 'open' || comm.isDisposed) {
      return Promise.reject(
        new GreedRequestError('greed: the comm is not open')
      );
    }
    const { id, result } = this._pending.add(request.method);
    try {
      // A restart or interrupt may cancel the future: nothing to report then.
      const message = requestMessage(id, request) as JSONObject;
      comm.send(message).done.catch(() => undefined);
    } catch (err) {
      console.warn('greed: sending a request failed', err);
      this._pending.drop(id, 'greed: sending the request failed');
    }
    return result;
  }

  /**
   * Ask for stats; the promise resolves when they arrive (or the comm closes or
   * the kernel restarts), and rejects when the request cannot be sent, the kernel
   * answers with an error, or no answer comes within PENDING_TIMEOUT_MS. The poll
   * backs off on a rejection.
   */
  async requestStats(): Promise<void> {
    try {
      await this.request({ method: 'stats' });
    } catch (err) {
      if (this._state === 'open') {
        throw err;
      }
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._closeComm(true);
    this._watchKernel(null);
    this._setState('none'); // settles a pending requestStats
    Signal.clearData(this);
  }

  // -- kernel changes ------------------------------------------------------------------

  private _onKernelChanged(
    _: ISessionContext,
    args: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._attach(args.newValue);
  }

  private _onStatusChanged(): void {
    const kernel = this.sessionContext.session?.kernel ?? null;
    if (kernel !== this._kernel) {
      this._attach(kernel);
      return;
    }
    if (!kernel || this._state === 'none' || this._state === 'checking') {
      return;
    }
    const status = kernel.status;
    if (
      status === 'restarting' ||
      status === 'autorestarting' ||
      status === 'dead' ||
      status === 'unknown' ||
      kernel.connectionStatus !== 'connected'
    ) {
      // A restart disposes every comm of the connection without closing it: start over,
      // forgetting the old kernel's stats and variables.
      if (this._comm || this._state !== 'waiting') {
        this._closeComm(false);
        this._reset();
        this._setState('waiting');
      }
      return;
    }
    if (this._state === 'waiting') {
      this._open(kernel);
    }
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    if (this._disposed) {
      return;
    }
    this._closeComm(true);
    this._watchKernel(kernel);
    this._reset();
    if (!kernel || kernel.isDisposed) {
      this._setState('none');
      return;
    }
    if (isGreedKernel(kernel.name)) {
      this._setState('waiting');
      this._onStatusChanged();
      return;
    }
    // Another spec name: the kernel_info implementation decides. Other kernels get no comm.
    this._setState('checking');
    kernel.info
      .then(info => {
        if (
          this._disposed ||
          kernel !== this._kernel ||
          this._state !== 'checking'
        ) {
          return;
        }
        if (isGreedKernel(kernel.name, info.implementation)) {
          this._setState('waiting');
          this._onStatusChanged();
        } else {
          this._setState('none');
        }
      })
      .catch(() => {
        if (
          !this._disposed &&
          kernel === this._kernel &&
          this._state === 'checking'
        ) {
          this._setState('none');
        }
      });
  }

  /** Follow the kernel's iopub messages: a cell that ran changes the variables. */
  private _watchKernel(kernel: Kernel.IKernelConnection | null): void {
    if (this._kernel) {
      this._kernel.iopubMessage.disconnect(this._onIOPub, this);
    }
    this._kernel = kernel;
    if (kernel) {
      kernel.iopubMessage.connect(this._onIOPub, this);
    }
  }

  private _onIOPub(
    _: Kernel.IKernelConnection,
    msg: KernelMessage.IIOPubMessage
  ): void {
    if (!this.isOpen) {
      return;
    }
    if (msg.header.msg_type === 'execute_input') {
      this._cellRan = true;
    } else if (
      msg.header.msg_type === 'status' &&
      (msg as KernelMessage.IStatusMsg).content.execution_state === 'idle' &&
      this._cellRan &&
      'msg_type' in msg.parent_header &&
      msg.parent_header.msg_type === 'execute_request'
    ) {
      this._cellRan = false;
      this._changed.emit('cell');
    }
  }

  // -- the comm ----------------------------------------------------------------------------

  private _open(kernel: Kernel.IKernelConnection): void {
    if (this._comm || kernel.isDisposed || !kernel.handleComms) {
      return;
    }
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch (err) {
      console.warn('greed: could not create the comm', err);
      this._setState('closed');
      return;
    }
    // The kernel answers requests between cells, on its main thread: a cleanup must
    // never run while a cell does. So this comm uses no subshell (JupyterLab's
    // default puts each comm target on one where the kernel supports them).
    // (@jupyterlab/services before 7.5 has neither the setting nor subshells.)
    if ('commsOverSubshells' in comm) {
      comm.commsOverSubshells = CommsOverSubshells.Disabled;
    }
    comm.onMsg = msg => this._onMsg(comm, msg);
    comm.onClose = () => this._onClose(comm);
    this._comm = comm;
    // Ids unique to this comm: an answer meant for an earlier one never matches.
    this._pending = new PendingRequests(
      comm.commId.slice(0, 8),
      PENDING_TIMEOUT_MS
    );
    this._setState('opening');
    try {
      const future = comm.open({});
      future.done.catch(() => undefined); // an interrupted or restarted kernel drops it
    } catch (err) {
      console.warn('greed: could not open the comm', err);
      this._comm = null;
      this._setState('closed');
    }
  }

  private _onClose(comm: Kernel.IComm): void {
    if (comm !== this._comm) {
      return;
    }
    this._comm = null;
    this._setState('closed');
    this._pending.rejectAll('greed: the kernel closed the comm');
  }

  private _closeComm(sendClose: boolean): void {
    const comm = this._comm;
    this._comm = null;
    this._pending.rejectAll('greed: the comm closed');
    if (!comm) {
      return;
    }
    comm.onMsg = () => undefined;
    comm.onClose = () => undefined;
    if (comm.isDisposed) {
      return;
    }
    const kernel = this._kernel;
    const alive =
      kernel &&
      !kernel.isDisposed &&
      kernel.connectionStatus === 'connected' &&
      kernel.status !== 'dead';
    try {
      if (sendClose && alive) {
        comm.close().done.catch(() => undefined);
      } else {
        comm.dispose();
      }
    } catch {
      comm.dispose();
    }
  }

  private _onMsg(comm: Kernel.IComm, msg: KernelMessage.ICommMsgMsg): void {
    if (comm !== this._comm || this._disposed) {
      return;
    }
    const message = readMessage(msg.content.data);
    if (!message) {
      return; // not ours to understand: garbage, or another protocol
    }
    if (message.kind !== 'notification') {
      this._onResponse(message);
      return;
    }
    const event = parseEvent(message.method, message.params);
    if (!event) {
      return; // a newer kernel's event, or a malformed one
    }
    this._apply(event);
    this._received.emit(event);
  }

  /** A response: what it says is kept, then the request it answers is settled. */
  private _onResponse(
    message: Exclude<Incoming, { kind: 'notification' }>
  ): void {
    const method = this._pending.method(message.id);
    if (method === null) {
      return; // answers no request of ours (one that timed out)
    }
    if (
      message.kind === 'error' &&
      method === 'memory' &&
      message.code === ERROR_CODES.METHOD_NOT_FOUND
    ) {
      // An older kernel: no plot, and no error to show for it.
      this._memorySupported = false;
    } else if (message.kind === 'error') {
      this._error = message.message;
    } else {
      this._error = '';
      this._applyResult(method, message.result);
    }
    this._pending.settle(message);
    this._changed.emit(message.kind === 'error' ? 'error' : method);
  }

  private _applyResult(method: GreedMethod, result: unknown): void {
    switch (method) {
      case 'stats': {
        const stats = parseStats(result);
        if (stats) {
          this._setStats(stats);
        }
        break;
      }
      case 'vars': {
        const vars = parseVariables(result);
        if (vars) {
          this._variables = vars.variables;
          this._omitted = vars.omitted;
        }
        break;
      }
      case 'history': {
        const reports = parseHistory(result);
        if (reports) {
          this._setHistory(reports);
        }
        break;
      }
      case 'memory': {
        const timeline = parseMemoryTimeline(result);
        if (timeline) {
          this._memory = timeline;
        }
        break;
      }
      case 'restore':
        // The answer has no stats: ask, so that what is paged shows at once.
        this.request({ method: 'stats' }).catch(() => undefined);
        break;
      default:
        break;
    }
  }

  private _setStats(stats: IStats): void {
    this._stats = stats;
    this._statsAt = Date.now();
    if (stats.memoryBudget?.held !== false) {
      this._holders = null;
    }
  }

  private _setHistory(reports: IReport[]): void {
    this._history = reports;
    const cleanups = reports.filter(r => r.kind === 'cleanup');
    const last = cleanups[cleanups.length - 1];
    if (
      last &&
      (!this._lastCleanup || (last.time ?? 0) >= (this._lastCleanup.time ?? 0))
    ) {
      this._lastCleanup = last;
    }
  }

  private _apply(event: GreedEvent): void {
    this._setStats(event.stats);
    switch (event.event) {
      case 'hello':
        this._version = event.version;
        this._threshold = event.config.memoryThreshold;
        this._previousKernel = event.previousKernel;
        this._error = '';
        this._setState('open');
        // The last cleanup before this comm opened is in the history.
        this.request({ method: 'history' }).catch(() => undefined);
        break;
      case 'execution:cleanup':
        this._lastCleanup = event.report;
        break;
      case 'memory:pressure':
        if (event.holders !== null) {
          this._holders = event.holders;
        }
        break;
      default:
        break;
    }
    this._changed.emit(event.event);
  }

  private _reset(): void {
    this._stats = null;
    this._threshold = DEFAULT_THRESHOLD;
    this._version = '';
    this._lastCleanup = null;
    this._variables = null;
    this._omitted = 0;
    this._history = null;
    this._memory = null;
    this._memorySupported = true;
    this._previousKernel = null;
    this._holders = null;
    this._error = '';
    this._statsAt = 0;
    this._cellRan = false;
  }

  private _setState(state: ConnectionState): void {
    if (this._state !== state) {
      this._state = state;
      this._changed.emit('state');
    }
  }

  private _disposed = false;
  private _state: ConnectionState = 'none';
  private _kernel: Kernel.IKernelConnection | null = null;
  private _comm: Kernel.IComm | null = null;
  private _stats: IStats | null = null;
  private _threshold = DEFAULT_THRESHOLD;
  private _version = '';
  private _lastCleanup: IReport | null = null;
  private _variables: IVariable[] | null = null;
  private _omitted = 0;
  private _history: IReport[] | null = null;
  private _memory: IMemoryTimeline | null = null;
  private _memorySupported = true;
  private _previousKernel: IPreviousKernel | null = null;
  private _holders: IHolder[] | null = null;
  private _error = '';
  private _statsAt = 0;
  private _pending = new PendingRequests('', PENDING_TIMEOUT_MS);
  private _cellRan = false;
  private _changed = new Signal<this, string>(this);
  private _received = new Signal<this, GreedEvent>(this);
}
