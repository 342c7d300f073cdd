// The stats poll of the IGreedConnections service (src/service.ts), with a stand-in
// connection: the refresh rate, standby, backoff, a cell that ran, and disposal.
import { Poll } from '@lumino/polling';
import { Signal } from '@lumino/signaling';

import { GreedConnections } from '../src/service';
import { GreedConnection } from '../src/connection';

jest.mock('../src/connection', () => ({ GreedConnection: jest.fn() }));

/** What the service reads of a connection, and counts of its stats requests. */
class FakeConnection {
  isOpen = true;
  isGreed = true;
  isDisposed = false;
  kernelIdle = true;
  statsAt = 0;
  statsPending = false;
  requests = 0;
  fail = false;
  changed = new Signal<this, string>(this);
  received = new Signal<this, unknown>(this);

  requestStats(): Promise<void> {
    this.requests += 1;
    if (this.fail) {
      return Promise.reject(new Error('error answer'));
    }
    this.statsAt = Date.now();
    return Promise.resolve();
  }

  dispose(): void {
    this.isDisposed = true;
  }
}

const page = { visibilityState: 'visible' };
Object.defineProperty(globalThis, 'document', { value: page, writable: true });

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

async function until(ready: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) {
      throw new Error('timed out');
    }
    await sleep(10);
  }
}

function pollOf(service: GreedConnections): Poll<void, Error, 'standby'> {
  return (service as unknown as { _poll: Poll<void, Error, 'standby'> })._poll;
}

function serviceWith(
  connection: FakeConnection | null,
  refreshRate = 40
): GreedConnections {
  const service = new GreedConnections({ refreshRate });
  service.current = connection as unknown as GreedConnection | null;
  return service;
}

let services: GreedConnections[] = [];

function track(service: GreedConnections): GreedConnections {
  services.push(service);
  return service;
}

afterEach(() => {
  services.forEach(s => s.dispose());
  services = [];
  page.visibilityState = 'visible';
});

describe('the stats poll', () => {
  it('asks the current connection for stats, again and again', async () => {
    const connection = new FakeConnection();
    track(serviceWith(connection));
    await until(() => connection.requests >= 3);
  });

  it('follows a new refresh rate, backoff limit included', async () => {
    const connection = new FakeConnection();
    const service = track(serviceWith(connection, 3_600_000));
    await until(() => connection.requests >= 1); // the first tick: never had stats
    expect(service.refreshRate).toBe(3_600_000);
    service.refreshRate = 40;
    expect(pollOf(service).frequency).toEqual({
      interval: 40,
      backoff: true,
      max: 400
    });
    const before = connection.requests;
    await until(() => connection.requests >= before + 3);
  });

  it('asks nothing while the kernel is busy, the comm closed or stats are pending', async () => {
    const changes: Array<Partial<FakeConnection>> = [
      { kernelIdle: false },
      { isOpen: false },
      { statsPending: true }
    ];
    for (const change of changes) {
      const connection: FakeConnection = Object.assign(
        new FakeConnection(),
        change
      );
      const service = track(serviceWith(connection));
      const ticks: string[] = [];
      pollOf(service).ticked.connect((_, state) => ticks.push(state.phase));
      await until(() => ticks.filter(p => p === 'resolved').length >= 3);
      expect(connection.requests).toBe(0);
    }
  });

  it('stands by while the page is hidden or no Greed kernel is current', async () => {
    page.visibilityState = 'hidden';
    const connection = new FakeConnection();
    const service = track(serviceWith(connection));
    const phases: string[] = [];
    pollOf(service).ticked.connect((_, state) => phases.push(state.phase));
    await until(() => phases.filter(p => p === 'standby').length >= 3);
    expect(connection.requests).toBe(0);

    page.visibilityState = 'visible';
    await until(() => connection.requests >= 1);

    service.current = null;
    const requests = connection.requests;
    const standby = phases.length;
    await until(
      () => phases.slice(standby).filter(p => p === 'standby').length >= 3
    );
    expect(connection.requests).toBe(requests);
  });

  it('backs off when requests fail, and recovers', async () => {
    const connection = new FakeConnection();
    connection.fail = true;
    const service = track(serviceWith(connection));
    const rejected: number[] = [];
    pollOf(service).ticked.connect((_, state) => {
      if (state.phase === 'rejected') {
        rejected.push(state.interval);
      }
    });
    await until(() => rejected.length >= 4);
    // Each wait is drawn between the interval and 3 times the last one (a random
    // draw, capped at the poll's max): after four failures it has grown.
    expect(Math.max(...rejected)).toBeGreaterThan(40);
    connection.fail = false;
    const phases: string[] = [];
    pollOf(service).ticked.connect((_, state) => phases.push(state.phase));
    await until(() => phases.includes('reconnected'));
    expect(pollOf(service).state.interval).toBe(40);
  });

  it('asks soon after a cell ran', async () => {
    const connection = new FakeConnection();
    track(serviceWith(connection, 3_600_000));
    await until(() => connection.requests >= 1);
    connection.statsAt = Date.now() - 3_600_000; // the last stats are a refresh old
    connection.changed.emit('cell');
    await until(() => connection.requests >= 2);
  });

  it('emits a tick for the views on each poll', async () => {
    const connection = new FakeConnection();
    const service = track(serviceWith(connection));
    const seen: string[] = [];
    service.changed.connect((_, what) => seen.push(what));
    await until(() => seen.filter(w => w === 'tick').length >= 2);
  });

  it('disposes its poll and leaves no listener behind', async () => {
    const connection = new FakeConnection();
    const service = serviceWith(connection);
    await until(() => connection.requests >= 1);
    const poll = pollOf(service);
    service.dispose();
    expect(service.isDisposed).toBe(true);
    expect(poll.isDisposed).toBe(true);
    expect(service.current).toBeNull();
    const requests = connection.requests;
    connection.changed.emit('cell'); // no longer connected: schedules nothing
    await sleep(150);
    expect(connection.requests).toBe(requests);
    service.refreshRate = 10; // ignored once disposed
    service.dispose(); // twice is fine
  });
});
