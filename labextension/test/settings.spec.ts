// The pure logic behind the settings, the stats poll and translation (src/logic.ts).
import connectionsSchema from '../schema/connections.json';
import statusSchema from '../schema/status-item.json';
import {
  DEFAULT_REFRESH_RATE_S,
  ITrans,
  MAX_BACKOFF_MS,
  MAX_REFRESH_RATE_S,
  MIN_REFRESH_RATE_S,
  NO_TRANSLATION,
  IStats,
  booleanSetting,
  cleanupText,
  formatAgo,
  maxBackoffMs,
  parseStats,
  refreshIntervalMs,
  statsDelayMs,
  statsDue,
  statusView
} from '../src/logic';

describe('the settings schemas', () => {
  it('default to a 5 s refresh rate within the accepted range', () => {
    const rate = connectionsSchema.properties.refreshRate;
    expect(rate.default).toBe(DEFAULT_REFRESH_RATE_S);
    expect(DEFAULT_REFRESH_RATE_S).toBe(5);
    expect(rate.minimum).toBe(MIN_REFRESH_RATE_S);
    expect(rate.maximum).toBe(MAX_REFRESH_RATE_S);
    expect(connectionsSchema.additionalProperties).toBe(false);
  });

  it('show the status item by default', () => {
    expect(statusSchema.properties.showStatusItem.default).toBe(true);
    expect(statusSchema.additionalProperties).toBe(false);
  });
});

describe('refreshIntervalMs', () => {
  it.each([
    [5, 5000],
    [1, 1000],
    [0.5, 500],
    [2.4, 2400],
    [0.1, 500],
    [0, 500],
    [-3, 500],
    [1e9, 3_600_000],
    [NaN, 5000],
    [Infinity, 5000],
    ['7', 5000],
    [null, 5000],
    [undefined, 5000]
  ])('%p s -> %p ms', (seconds, ms) => {
    expect(refreshIntervalMs(seconds)).toBe(ms);
  });
});

describe('maxBackoffMs', () => {
  it('backs off to ten refreshes, at most five minutes, never below the interval', () => {
    expect(maxBackoffMs(5000)).toBe(50_000);
    expect(maxBackoffMs(500)).toBe(5000);
    expect(maxBackoffMs(60_000)).toBe(MAX_BACKOFF_MS);
    expect(maxBackoffMs(3_600_000)).toBe(3_600_000);
  });
});

describe('booleanSetting', () => {
  it('takes booleans and falls back otherwise', () => {
    expect(booleanSetting(false, true)).toBe(false);
    expect(booleanSetting(true, false)).toBe(true);
    expect(booleanSetting('false', true)).toBe(true);
    expect(booleanSetting(undefined, true)).toBe(true);
    expect(booleanSetting(0, true)).toBe(true);
  });
});

describe('statsDue', () => {
  const now = 1_000_000;
  it('asks once the last stats are an interval old', () => {
    expect(statsDue(now, now - 5000, 5000, false)).toBe(true);
    expect(statsDue(now, now - 4800, 5000, false)).toBe(true); // a tick 200 ms early
    expect(statsDue(now, now - 4700, 5000, false)).toBe(false);
    expect(statsDue(now, 0, 5000, false)).toBe(true); // never had any
  });

  it('allows at most a quarter of a short interval of slack', () => {
    expect(statsDue(now, now - 380, 500, false)).toBe(true);
    expect(statsDue(now, now - 370, 500, false)).toBe(false);
  });

  it('never asks while a request is on its way', () => {
    expect(statsDue(now, 0, 5000, true)).toBe(false);
  });
});

describe('statsDelayMs', () => {
  it('is zero once due, else the time left', () => {
    expect(statsDelayMs(10_000, 0, 5000)).toBe(0);
    expect(statsDelayMs(10_000, 9000, 5000)).toBe(4000);
    expect(statsDelayMs(10_000, 5000, 5000)).toBe(0);
  });
});

describe('translation', () => {
  it('fills %1, %2 in English without a translator', () => {
    expect(NO_TRANSLATION.__('%1 of %2', 'a', 3)).toBe('a of 3');
    expect(NO_TRANSLATION.__('100%')).toBe('100%');
    expect(NO_TRANSLATION.__('%3 and %1', 'x')).toBe('%3 and x');
  });

  it('routes every shown sentence through the translator', () => {
    const seen: string[] = [];
    const upper: ITrans = {
      __: (msgid: string, ...args: unknown[]) => {
        seen.push(msgid);
        return NO_TRANSLATION.__(msgid.toUpperCase(), ...args);
      }
    };
    expect(formatAgo(12, upper)).toBe('12 S AGO');
    expect(formatAgo(null, upper)).toBe('NEVER');
    expect(cleanupText(null, 0, upper)).toBe('NO CLEANUP YET');
    const s = parseStats({ rssBytes: 2048 }) as IStats;
    const view = statusView(s, 0.8, null, 0, upper);
    expect(view.text).toBe('RSS 2.0 KiB (0%) · NO CLEANUP YET');
    expect(view.title.split('\n')[0]).toBe('GREED KERNEL: CLICK FOR VARIABLES');
    expect(seen).toContain('RSS %1 (%2)');
  });
});
