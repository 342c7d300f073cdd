// The generated protocol types (src/protocol.ts) in use: what the extension sends and
// reads type-checks against them (test/schema.spec.js checks they are current).
import { IGreedEvents, IGreedMethods } from '../src/protocol';
import { GreedRequest, requestMessage } from '../src/rpc';

describe('the protocol types', () => {
  it('type each method and event', () => {
    const params: IGreedMethods['restore']['params'][] = [
      { names: ['w'] },
      { all: true }
    ];
    const result: IGreedMethods['vars']['result'] = {
      variables: [],
      omitted: 0
    };
    const pressure: IGreedEvents['memory:pressure'] = {
      stats: {} as IGreedMethods['stats']['result']
    };
    expect(params.length + result.omitted).toBe(2);
    expect(pressure.holders).toBeUndefined();
  });

  it('type the requests the extension sends', () => {
    const requests: GreedRequest[] = [
      { method: 'stats' },
      { method: 'cleanup', params: {} },
      { method: 'preserve', params: { names: ['x'] } },
      { method: 'restore', params: { all: true } }
    ];
    expect(requests.map((r, i) => requestMessage(`r-${i}`, r).id)).toEqual([
      'r-0',
      'r-1',
      'r-2',
      'r-3'
    ]);
  });
});
