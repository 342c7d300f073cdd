// src/protocol.ts against greed_kernel/frontends/protocol.schema.json: generated from the current
// schema, so that `jlpm test` (and scripts/check_labextension.sh) fails on a schema
// change without regenerated types. Plain JavaScript: it needs Node's fs and
// child_process, for which the TypeScript tests have no types.
const { execFileSync } = require('child_process');
const { readFileSync } = require('fs');
const { join } = require('path');

const { ERROR_CODES, GREED_EVENTS, GREED_METHODS } = require('../src/protocol');

const ROOT = join(__dirname, '..');
const SCHEMA = JSON.parse(
  readFileSync(
    join(ROOT, '..', 'greed_kernel', 'frontends', 'protocol.schema.json'),
    'utf-8'
  )
);

describe('src/protocol.ts', () => {
  it('is generated from the current schema (`jlpm protocol` regenerates it)', () => {
    // In a child process: the generator formats with prettier, an ES module.
    const check = () =>
      execFileSync(
        process.execPath,
        [join(ROOT, 'scripts', 'protocol-types.js'), '--check'],
        { cwd: ROOT, stdio: 'pipe' }
      );
    expect(check).not.toThrow();
  });

  it("lists the schema's methods, events and error codes", () => {
    expect(GREED_METHODS).toEqual(Object.keys(SCHEMA.methods));
    expect(GREED_EVENTS).toEqual(Object.keys(SCHEMA.events));
    expect(Object.entries(ERROR_CODES)).toEqual(
      SCHEMA.$defs.ErrorCode.oneOf.map(c => [c.title, c.const])
    );
  });
});
