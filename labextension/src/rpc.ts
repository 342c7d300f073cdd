/**
 * JSON-RPC 2.0 on the `greed` comm, without JupyterLab: request messages, what an
 * incoming message is, and the requests waiting for their response, matched by id
 * (an event or another request's answer never settles one). Unit-tested on its own
 * (test/rpc.spec.ts).
 */

import {
  ERROR_CODES,
  GreedMethod,
  IGreedMethods,
  Id,
  JSONRPC
} from './protocol';

/** A request the extension sends: a method and its params. */
export type GreedRequest = {
  [M in GreedMethod]: { method: M; params?: IGreedMethods[M]['params'] };
}[GreedMethod];

/** The message for a request with this id. */
export function requestMessage(
  id: string,
  request: GreedRequest
): { jsonrpc: typeof JSONRPC; id: string; method: string; params: object } {
  return {
    jsonrpc: JSONRPC,
    id,
    method: request.method,
    params: request.params ?? {}
  };
}

/** An error answer (or no answer): the kernel's code and message. */
export class GreedRequestError extends Error {
  constructor(
    message: string,
    /** The JSON-RPC error code; null when the request got no answer. */
    readonly code: number | null = null
  ) {
    super(message);
    this.name = 'GreedRequestError';
  }
}

type Dict = { [key: string]: unknown };

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is Id {
  return (
    value === null ||
    typeof value === 'string' ||
    (typeof value === 'number' && Number.isInteger(value))
  );
}

/** What a comm message from the kernel is. */
export type Incoming =
  | { kind: 'result'; id: Id; result: unknown }
  | { kind: 'error'; id: Id; code: number; message: string }
  | { kind: 'notification'; method: string; params: Dict };

/** Read a comm message's data; null when it is no JSON-RPC 2.0 message. */
export function readMessage(data: unknown): Incoming | null {
  if (!isDict(data) || data.jsonrpc !== JSONRPC) {
    return null;
  }
  if (!('id' in data)) {
    if (typeof data.method !== 'string') {
      return null;
    }
    return {
      kind: 'notification',
      method: data.method,
      params: isDict(data.params) ? data.params : {}
    };
  }
  if (!isId(data.id)) {
    return null;
  }
  if ('result' in data) {
    return { kind: 'result', id: data.id, result: data.result };
  }
  if (isDict(data.error)) {
    const code = data.error.code;
    const message = data.error.message;
    return {
      kind: 'error',
      id: data.id,
      code:
        typeof code === 'number' && Number.isInteger(code)
          ? code
          : ERROR_CODES.INTERNAL_ERROR,
      message: typeof message === 'string' && message ? message : 'error'
    };
  }
  return null;
}

interface IPending {
  method: GreedMethod;
  resolve: (result: unknown) => void;
  reject: (error: GreedRequestError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The requests sent and not answered yet. `add` gives each its id and a promise; a
 * response settles only the request with its id; a request unanswered after
 * `timeoutMs` is rejected (an interrupted or restarted kernel), and `rejectAll` drops
 * every one (the comm closed).
 */
export class PendingRequests {
  constructor(
    readonly prefix: string,
    readonly timeoutMs: number
  ) {}

  /** How many requests wait for an answer. */
  get size(): number {
    return this._pending.size;
  }

  /** Whether a request of this method waits for its answer. */
  has(method: GreedMethod): boolean {
    for (const pending of this._pending.values()) {
      if (pending.method === method) {
        return true;
      }
    }
    return false;
  }

  /** A new request: its id, and the promise of its result. */
  add(method: GreedMethod): { id: string; result: Promise<unknown> } {
    this._count += 1;
    const id = `${this.prefix}-${this._count}`;
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this._pending.delete(id)) {
          reject(new GreedRequestError(`no answer to ${method}`));
        }
      }, this.timeoutMs);
      this._pending.set(id, { method, resolve, reject, timer });
    });
    return { id, result };
  }

  /** The method of a waiting request, if `id` is one. */
  method(id: Id): GreedMethod | null {
    return typeof id === 'string'
      ? (this._pending.get(id)?.method ?? null)
      : null;
  }

  /**
   * Settle the request a response answers; false when it answers none of ours (an
   * answer after its timeout, or to someone else).
   */
  settle(message: Incoming): boolean {
    if (message.kind === 'notification' || typeof message.id !== 'string') {
      return false;
    }
    const pending = this._pending.get(message.id);
    if (!pending) {
      return false;
    }
    this._pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.kind === 'result') {
      pending.resolve(message.result);
    } else {
      pending.reject(new GreedRequestError(message.message, message.code));
    }
    return true;
  }

  /** Forget a request that could not be sent. */
  drop(id: string, reason: string): void {
    this._fail(id, reason);
  }

  /** Reject every waiting request (the comm closed, the kernel restarted). */
  rejectAll(reason: string): void {
    for (const id of [...this._pending.keys()]) {
      this._fail(id, reason);
    }
  }

  private _fail(id: string, reason: string): void {
    const pending = this._pending.get(id);
    if (pending) {
      this._pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new GreedRequestError(reason));
    }
  }

  private _count = 0;
  private _pending = new Map<string, IPending>();
}
