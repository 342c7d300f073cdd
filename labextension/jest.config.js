// Unit tests of the pure logic (src/logic.ts): no DOM, no JupyterLab packages.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  // *.spec.js: the checks that need Node's own modules (no types for them here)
  testMatch: ['**/*.spec.ts', '**/*.spec.js'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
