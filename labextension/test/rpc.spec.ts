// JSON-RPC on the comm (src/rpc.ts): each request is settled by the answer with its
// id only, never by an event, another request's answer or a stray one.
import {
  GreedRequestError,
  PendingRequests,
  readMessage,
  requestMessage
} from '../src/rpc';

function result(id: unknown, value: unknown): unknown {
  return { jsonrpc: '2.0', id, result: value };
}

function error(id: unknown, code: number, message: string): unknown {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

/** Deliver a message as the connection does: read it, then settle what it answers. */
function deliver(pending: PendingRequests, data: unknown): boolean {
  const message = readMessage(data);
  return message !== null && pending.settle(message);
}

afterEach(() => {
  jest.useRealTimers();
});

describe('requestMessage', () => {
  it('writes a JSON-RPC 2.0 request, params by name', () => {
    expect(requestMessage('a-1', { method: 'stats' })).toEqual({
      jsonrpc: '2.0',
      id: 'a-1',
      method: 'stats',
      params: {}
    });
    expect(
      requestMessage('a-2', { method: 'restore', params: { all: true } })
    ).toMatchObject({ method: 'restore', params: { all: true } });
  });
});

describe('readMessage', () => {
  it('tells results, errors and notifications apart', () => {
    expect(readMessage(result('a-1', { x: 1 }))).toEqual({
      kind: 'result',
      id: 'a-1',
      result: { x: 1 }
    });
    expect(readMessage(result('a-1', null))).toMatchObject({ result: null });
    expect(readMessage(error(null, -32600, 'bad'))).toEqual({
      kind: 'error',
      id: null,
      code: -32600,
      message: 'bad'
    });
    expect(
      readMessage({ jsonrpc: '2.0', method: 'memory:pressure', params: {} })
    ).toEqual({ kind: 'notification', method: 'memory:pressure', params: {} });
  });

  it('rejects what is not JSON-RPC 2.0', () => {
    for (const junk of [
      null,
      'x',
      [],
      { event: 'stats', stats: {} }, // the old protocol
      { jsonrpc: '1.0', id: 1, result: 1 },
      { jsonrpc: '2.0', id: {}, result: 1 },
      { jsonrpc: '2.0', id: 1.5, result: 1 },
      { jsonrpc: '2.0', id: 1 },
      { jsonrpc: '2.0', method: 5 }
    ]) {
      expect(readMessage(junk)).toBeNull();
    }
  });

  it('reads a malformed error as an internal one', () => {
    expect(
      readMessage({ jsonrpc: '2.0', id: 'a', error: { code: 'x' } })
    ).toEqual({ kind: 'error', id: 'a', code: -32603, message: 'error' });
  });
});

describe('PendingRequests', () => {
  it('gives each request its own id', () => {
    const pending = new PendingRequests('c0ffee', 1000);
    const a = pending.add('stats');
    const b = pending.add('stats');
    expect(a.id).not.toEqual(b.id);
    expect(a.id.startsWith('c0ffee-')).toBe(true);
    expect(pending.size).toBe(2);
    expect(pending.has('stats')).toBe(true);
    expect(pending.has('vars')).toBe(false);
    pending.rejectAll('done');
    return Promise.all([
      expect(a.result).rejects.toThrow('done'),
      expect(b.result).rejects.toThrow('done')
    ]);
  });

  it('settles each request with its own answer, in any order', async () => {
    const pending = new PendingRequests('p', 1000);
    const stats = pending.add('stats');
    const cleanup = pending.add('cleanup');
    const vars = pending.add('vars');
    expect(pending.method(cleanup.id)).toBe('cleanup');
    // events and strays first: none of them settles anything
    expect(
      deliver(pending, {
        jsonrpc: '2.0',
        method: 'execution:cleanup',
        params: { report: { trigger: 'periodic' } }
      })
    ).toBe(false);
    expect(deliver(pending, result('p-99', 'stray'))).toBe(false);
    expect(deliver(pending, result('other-1', 'another comm'))).toBe(false);
    expect(deliver(pending, result(1, 'a number id'))).toBe(false);
    expect(deliver(pending, error(null, -32600, 'malformed'))).toBe(false);
    expect(pending.size).toBe(3);
    // answers in reverse order
    expect(deliver(pending, result(vars.id, 'the vars'))).toBe(true);
    expect(deliver(pending, error(cleanup.id, -32000, 'failed'))).toBe(true);
    expect(deliver(pending, result(stats.id, 'the stats'))).toBe(true);
    expect(deliver(pending, result(stats.id, 'again'))).toBe(false); // once
    await expect(vars.result).resolves.toBe('the vars');
    await expect(stats.result).resolves.toBe('the stats');
    const failure = await cleanup.result.catch((e: GreedRequestError) => e);
    expect(failure).toBeInstanceOf(GreedRequestError);
    expect(failure).toMatchObject({ code: -32000, message: 'failed' });
    expect(pending.size).toBe(0);
  });

  it('rejects a request nobody answers, and ignores its late answer', async () => {
    jest.useFakeTimers();
    const pending = new PendingRequests('t', 30_000);
    const stats = pending.add('stats');
    const settled = stats.result.catch((e: GreedRequestError) => e);
    jest.advanceTimersByTime(30_000);
    const failure = await settled;
    expect(failure).toMatchObject({
      code: null,
      message: 'no answer to stats'
    });
    expect(deliver(pending, result(stats.id, 'late'))).toBe(false);
    expect(pending.has('stats')).toBe(false);
  });

  it('drops a request that could not be sent', async () => {
    const pending = new PendingRequests('d', 1000);
    const vars = pending.add('vars');
    pending.drop(vars.id, 'not sent');
    await expect(vars.result).rejects.toThrow('not sent');
    expect(pending.size).toBe(0);
  });
});
