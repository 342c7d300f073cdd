// One GreedConnection (src/connection.ts) on a stand-in kernel and comm: what the hello
// says of the previous kernel, the `memory` answer kept, and a kernel older than the
// `memory` method (METHOD_NOT_FOUND): no plot, no error shown, not asked again.
import { Signal } from '@lumino/signaling';

import { GreedConnection } from '../src/connection';
import { ERROR_CODES } from '../src/protocol';

jest.mock('@jupyterlab/services', () => ({
  CommsOverSubshells: { Disabled: 'disabled' }
}));

type Data = { [key: string]: unknown };

/** A comm that records what the extension sends. */
class FakeComm {
  commId = 'c0ffee00-comm';
  isDisposed = false;
  sent: Data[] = [];
  onMsg: (msg: { content: { data: unknown } }) => void = () => undefined;
  onClose: () => void = () => undefined;

  open(): { done: Promise<void> } {
    return { done: Promise.resolve() };
  }

  send(data: Data): { done: Promise<void> } {
    this.sent.push(data);
    return { done: Promise.resolve() };
  }

  close(): { done: Promise<void> } {
    return { done: Promise.resolve() };
  }

  dispose(): void {
    this.isDisposed = true;
  }

  /** The kernel sends this message on the comm. */
  receive(data: Data): void {
    this.onMsg({ content: { data } });
  }

  /** The last request sent of this method. */
  last(method: string): Data {
    const found = this.sent.filter(m => m.method === method);
    if (!found.length) {
      throw new Error(`no ${method} request`);
    }
    return found[found.length - 1];
  }
}

function fakeSession(comm: FakeComm) {
  const kernel = {
    name: 'greed',
    status: 'idle',
    connectionStatus: 'connected',
    handleComms: true,
    isDisposed: false,
    iopubMessage: new Signal<object, unknown>({}),
    createComm: () => comm
  };
  const context = {
    session: { kernel },
    kernelChanged: new Signal<object, unknown>({}),
    statusChanged: new Signal<object, unknown>({}),
    connectionStatusChanged: new Signal<object, unknown>({})
  };
  return context;
}

const STATS = { executionCount: 1, rssBytes: 1 };

const PREVIOUS = {
  message:
    'Greed: the previous kernel of this notebook was killed at cell 57, out of memory (1.49 of its 1.50 GiB).',
  cause: 'oom',
  signal: null,
  executionCount: 57,
  unreclaimableBytes: 1600000000,
  limitBytes: 1610612736,
  inOneCall: false,
  pid: 99,
  startedAt: 1700000000,
  lastSeenAt: 1700000600
};

function openConnection(previousKernel: unknown = null): {
  comm: FakeComm;
  connection: GreedConnection;
} {
  const comm = new FakeComm();
  const connection = new GreedConnection(
    fakeSession(comm) as unknown as ConstructorParameters<
      typeof GreedConnection
    >[0]
  );
  comm.receive({
    jsonrpc: '2.0',
    method: 'hello',
    params: { version: '0.1.0', stats: STATS, config: {}, previousKernel }
  });
  return { comm, connection };
}

describe('GreedConnection', () => {
  it('keeps what the hello says of the previous kernel', () => {
    const { connection } = openConnection(PREVIOUS);
    expect(connection.isOpen).toBe(true);
    expect(connection.previousKernel).toMatchObject({
      message: PREVIOUS.message,
      cause: 'oom',
      executionCount: 57
    });
    connection.dispose();
    const clean = openConnection(null).connection;
    expect(clean.previousKernel).toBeNull();
    clean.dispose();
  });

  it('keeps the memory answer', async () => {
    const { comm, connection } = openConnection();
    const answer = connection.request({ method: 'memory' });
    expect(connection.memoryPending).toBe(true);
    comm.receive({
      jsonrpc: '2.0',
      id: comm.last('memory').id,
      result: {
        limitBytes: 100,
        guardThreshold: 0.95,
        memoryThreshold: 0.8,
        samples: [{ t: 1, unreclaimableBytes: 10, pagedBytes: 0 }],
        markers: [{ t: 1, kind: 'guard', executionCount: 2 }],
        guardStops: 1
      }
    });
    await answer;
    expect(connection.memoryPending).toBe(false);
    expect(connection.memorySupported).toBe(true);
    expect(connection.memory?.samples).toHaveLength(1);
    expect(connection.memory?.markers[0].kind).toBe('guard');
    connection.dispose();
  });

  it('takes METHOD_NOT_FOUND for memory as an older kernel, not as an error', async () => {
    const { comm, connection } = openConnection();
    const answer = connection.request({ method: 'memory' });
    comm.receive({
      jsonrpc: '2.0',
      id: comm.last('memory').id,
      error: { code: ERROR_CODES.METHOD_NOT_FOUND, message: 'no such method' }
    });
    await expect(answer).rejects.toMatchObject({
      code: ERROR_CODES.METHOD_NOT_FOUND
    });
    expect(connection.memorySupported).toBe(false);
    expect(connection.memory).toBeNull();
    expect(connection.error).toBe('');
    connection.dispose();
  });

  it('shows other errors of memory as errors', async () => {
    const { comm, connection } = openConnection();
    const answer = connection.request({ method: 'memory' });
    comm.receive({
      jsonrpc: '2.0',
      id: comm.last('memory').id,
      error: { code: ERROR_CODES.INTERNAL_ERROR, message: 'it broke' }
    });
    await expect(answer).rejects.toThrow('it broke');
    expect(connection.memorySupported).toBe(true);
    expect(connection.error).toBe('it broke');
    connection.dispose();
  });
});
